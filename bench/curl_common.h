/* What the two C baselines (curl_loop.c, curl_multi_loop.c) share: the growing body buffer,
 * the monotonic clock, the options of every easy handle (the same requests the library sends)
 * and the check of the canned answer. Static functions: each baseline is one file to compile. */
#ifndef BENCH_CURL_COMMON_H
#define BENCH_CURL_COMMON_H

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

typedef struct {
  char *data;
  size_t len, cap;
} buffer;

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  buffer *b = (buffer *)ud;
  size_t bytes = size * n;
  if (b->len + bytes > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    char *bigger;
    while (cap < b->len + bytes) cap *= 2;
    bigger = (char *)realloc(b->data, cap);
    if (bigger == NULL) return 0; /* aborts the transfer */
    b->data = bigger;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, bytes);
  b->len += bytes;
  return bytes;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Keep-alive GETs with the given headers, the body appended into body. */
static void setup_easy(CURL *e, struct curl_slist *headers, buffer *body) {
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* the same Accept-Encoding line */
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
}

/* Whether the text needle (a string literal) occurs in b. */
static int contains(const buffer *b, const char *needle) {
  size_t j, n = strlen(needle);
  for (j = 0; b->data && j + n <= b->len; j++)
    if (memcmp(b->data + j, needle, n) == 0) return 1;
  return 0;
}

#endif
