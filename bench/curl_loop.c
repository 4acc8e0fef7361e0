/* The baseline for client:get_webhook: a plain libcurl loop on one reused easy handle.
 *
 *   curl_loop URL [HEADER ...]
 *
 * Sends GET URL with the given "Name: value" headers (plus "Expect:"), appends each body into
 * a growing buffer and checks every answer is a 200 with a body. A short untimed warm-up opens
 * the keep-alive connection and checks the canned webhook once. Then it reads counts from
 * standard input, one a line: for each count N it sends N requests, timed with CLOCK_MONOTONIC,
 * and prints "<requests> <seconds>" on standard output. So client_bench.lua can run it in short
 * bursts between its own, and both see the same moment of a noisy machine. Ends at end of input
 * or on a count of 0. Exit status: 0 on success, 1 on a failed request, 2 on a usage error. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include "curl_common.h"

#define WARMUP 200

/* One request; 1 when it answered 200 with a body. */
static int fetch(CURL *e, buffer *body) {
  long status = 0;
  CURLcode rc;
  body->len = 0;
  rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    fprintf(stderr, "curl_loop: %s\n", curl_easy_strerror(rc));
    return 0;
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200 || body->len == 0) {
    fprintf(stderr, "curl_loop: status %ld, %lu body bytes\n", status, (unsigned long)body->len);
    return 0;
  }
  return 1;
}

int main(int argc, char **argv) {
  struct curl_slist *headers = NULL;
  buffer body = {NULL, 0, 0};
  char line[64];
  CURL *e;
  int i, ok = 1;

  if (argc < 2) {
    fprintf(stderr, "usage: curl_loop URL [HEADER ...] (counts on standard input)\n");
    return 2;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  e = curl_easy_init();
  if (e == NULL) return 1;
  for (i = 2; i < argc; i++) headers = curl_slist_append(headers, argv[i]);
  headers = curl_slist_append(headers, "Expect:");

  curl_easy_setopt(e, CURLOPT_URL, argv[1]);
  setup_easy(e, headers, &body);

  for (i = 0; i < WARMUP && ok; i++) ok = fetch(e, &body);
  if (ok) {
    /* The canned answer: checked once, outside the timed loop. */
    if (!contains(&body, "\"order.created\"")) {
      fprintf(stderr, "curl_loop: the answer has no \"order.created\" topic\n");
      ok = 0;
    }
  }

  while (ok && fgets(line, sizeof line, stdin) != NULL) {
    long n = strtol(line, NULL, 10), done = 0;
    double start;
    if (n <= 0 || n > 10000000L) break;
    start = now();
    while (ok && done < n) {
      ok = fetch(e, &body);
      done += ok;
    }
    if (ok) {
      printf("%ld %.9f\n", done, now() - start);
      fflush(stdout);
    }
  }

  curl_easy_cleanup(e);
  curl_slist_free_all(headers);
  free(body.data);
  curl_global_cleanup();
  return ok ? 0 : 1;
}
