/* The baseline for client:get_events: a plain libcurl multi loop with CONCURRENCY transfers in
 * flight on reused easy handles.
 *
 *   curl_multi_loop URL_PREFIX CONCURRENCY [HEADER ...]
 *
 * For a count N it sends GET URL_PREFIX<i> for i = 1..N (the ids client_bench.lua gives
 * get_events) with the given "Name: value" headers (plus "Expect:"), at most CONCURRENCY at a
 * time over one multi handle (CURLMOPT_MAX_TOTAL_CONNECTIONS = CONCURRENCY) and CONCURRENCY
 * easy handles created once, each with its own growing body buffer; every answer must be a 200
 * with a body. A short untimed warm-up opens the keep-alive connections and checks the canned
 * event once. Then it reads counts from standard input, one a line, and for each count prints
 * "<transfers> <seconds>" (CLOCK_MONOTONIC) on standard output. Ends at end of input or on a
 * count of 0. Exit status: 0 on success, 1 on a failed transfer, 2 on a usage error. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include "curl_common.h"

#define WARMUP 200
#define MAX_CONCURRENCY 64
#define MAX_SECONDS 120.0 /* a count that takes longer than this fails */


typedef struct {
  CURL *easy;
  buffer body;
  int busy;
  char url[512];
} slot;

/* Whether the finished transfer of s answered 200 with a body. */
static int answered(slot *s, CURLcode rc) {
  long status = 0;
  if (rc != CURLE_OK) {
    fprintf(stderr, "curl_multi_loop: %s: %s\n", s->url, curl_easy_strerror(rc));
    return 0;
  }
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200 || s->body.len == 0) {
    fprintf(stderr, "curl_multi_loop: %s: status %ld, %lu body bytes\n", s->url, status,
            (unsigned long)s->body.len);
    return 0;
  }
  return 1;
}

/* GET prefix<1..n>, at most conc in flight; 1 when every one answered 200 with a body. The
 * last finished slot is left in *last (for the warm-up's check of the body). */
static int run(CURLM *multi, slot *slots, int conc, const char *prefix, long n, slot **last) {
  long next = 1, done = 0;
  int active = 0, ok = 1, k;
  double deadline = now() + MAX_SECONDS;
  while (ok && done < n) {
    int running = 0, queued;
    CURLMsg *msg;
    for (k = 0; k < conc && next <= n; k++) { /* fill the free slots */
      slot *s = &slots[k];
      if (s->busy) continue;
      snprintf(s->url, sizeof s->url, "%s%ld", prefix, next);
      curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
      s->body.len = 0;
      if (curl_multi_add_handle(multi, s->easy) != CURLM_OK) {
        fprintf(stderr, "curl_multi_loop: curl_multi_add_handle failed\n");
        ok = 0;
        break;
      }
      s->busy = 1;
      active++;
      next++;
    }
    if (!ok) break;
    if (curl_multi_perform(multi, &running) != CURLM_OK) {
      fprintf(stderr, "curl_multi_loop: curl_multi_perform failed\n");
      ok = 0;
      break;
    }
    while ((msg = curl_multi_info_read(multi, &queued)) != NULL) {
      slot *s = NULL;
      CURLcode rc;
      if (msg->msg != CURLMSG_DONE) continue;
      rc = msg->data.result;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
      curl_multi_remove_handle(multi, msg->easy_handle); /* msg is gone after this */
      s->busy = 0;
      active--;
      done++;
      if (!answered(s, rc)) ok = 0;
      *last = s;
    }
    if (ok && active > 0 && running > 0) curl_multi_poll(multi, NULL, 0, 1000, NULL);
    if (now() > deadline) {
      fprintf(stderr, "curl_multi_loop: %ld transfers took more than %.0f s\n", n, MAX_SECONDS);
      ok = 0;
    }
  }
  for (k = 0; k < conc; k++) { /* leave every handle idle */
    if (slots[k].busy) curl_multi_remove_handle(multi, slots[k].easy);
    slots[k].busy = 0;
  }
  return ok;
}

int main(int argc, char **argv) {
  struct curl_slist *headers = NULL;
  slot slots[MAX_CONCURRENCY];
  slot *last = NULL;
  char line[64];
  CURLM *multi;
  const char *prefix;
  long conc;
  int i, ok = 1;

  if (argc < 3) {
    fprintf(stderr, "usage: curl_multi_loop URL_PREFIX CONCURRENCY [HEADER ...]"
                    " (counts on standard input)\n");
    return 2;
  }
  prefix = argv[1];
  conc = strtol(argv[2], NULL, 10);
  if (conc < 1 || conc > MAX_CONCURRENCY || strlen(prefix) > 400) {
    fprintf(stderr, "curl_multi_loop: CONCURRENCY must be 1..%d, URL_PREFIX at most 400 bytes\n",
            MAX_CONCURRENCY);
    return 2;
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return 1;
  multi = curl_multi_init();
  if (multi == NULL) return 1;
  curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conc);
  for (i = 3; i < argc; i++) headers = curl_slist_append(headers, argv[i]);
  headers = curl_slist_append(headers, "Expect:");

  memset(slots, 0, sizeof slots);
  for (i = 0; i < conc; i++) {
    CURL *e = curl_easy_init();
    if (e == NULL) return 1;
    slots[i].easy = e;
    setup_easy(e, headers, &slots[i].body);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)&slots[i]);
  }

  ok = run(multi, slots, (int)conc, prefix, WARMUP, &last);
  if (ok) {
    /* The canned answer: checked once, outside the timed loop. */
    if (last == NULL || !contains(&last->body, "\"action\"")) {
      fprintf(stderr, "curl_multi_loop: the answer is not an event (no \"action\")\n");
      ok = 0;
    }
  }

  while (ok && fgets(line, sizeof line, stdin) != NULL) {
    long n = strtol(line, NULL, 10);
    double start;
    if (n <= 0 || n > 10000000L) break;
    start = now();
    ok = run(multi, slots, (int)conc, prefix, n, &last);
    if (ok) {
      printf("%ld %.9f\n", n, now() - start);
      fflush(stdout);
    }
  }

  for (i = 0; i < conc; i++) {
    curl_easy_cleanup(slots[i].easy);
    free(slots[i].body.data);
  }
  curl_multi_cleanup(multi);
  curl_slist_free_all(headers);
  curl_global_cleanup();
  return ok ? 0 : 1;
}
