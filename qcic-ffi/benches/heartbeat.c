/* Cost of one qcic_client_heartbeat() call, as a C program sees it.
 * Built and run by qcic-bench (cargo bench -p qcic-monitor --bench qcic-bench).
 *
 * Usage: heartbeat UP_ENDPOINT DOWN_ENDPOINT CALLS
 * UP_ENDPOINT has a PULL draining it; nothing listens on DOWN_ENDPOINT.
 * Prints one JSON object: per-call times (ns, each call timed alone, the
 * clock's own cost reported apart) with the watcher up, and with it down
 * while the queue fills and once it is full, and resident memory before and
 * after the calls to the dead watcher. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qcic.h"

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static long rss_kib(void) {
    char line[256];
    long kib = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0) kib = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return kib;
}

/* Prints "name": {"median_ns": .., "p99_ns": .., "calls": n} for v[0..n). */
static void summary(const char *name, double *v, size_t n, const char *sep) {
    qsort(v, n, sizeof v[0], cmp);
    printf("\"%s\": {\"median_ns\": %.1f, \"p99_ns\": %.1f, \"calls\": %zu}%s", name, v[n / 2],
           v[n * 99 / 100], n, sep);
}

int main(int argc, char **argv) {
    qcic_client *up = NULL, *down = NULL;
    size_t calls, i, filling = 2000;
    double *t, *empty, t0;
    long rss_before, rss_after;
    qcic_stats stats;
    if (argc < 4 || qcic_client_new(argv[1], &up) != QCIC_STATUS_OK ||
        qcic_client_new(argv[2], &down) != QCIC_STATUS_OK) {
        fprintf(stderr, "usage: heartbeat UP_ENDPOINT DOWN_ENDPOINT CALLS\n");
        return 2;
    }
    calls = strtoul(argv[3], NULL, 10);
    if (calls < 2 * filling) calls = 2 * filling;
    t = malloc(calls * sizeof *t);
    empty = malloc(calls * sizeof *empty);
    if (!t || !empty) return 2;

    for (i = 0; i < calls; i++) {
        t0 = now_ns();
        empty[i] = now_ns() - t0;
    }
    printf("{\"lang\": \"C\", ");
    summary("clock", empty, calls, ", ");

    /* Watcher up: flushed every 1000 calls (untimed), so every timed call
     * is a real enqueue, never the cheaper queue-full drop. */
    for (i = 0; i < calls; i++) {
        if (i % 1000 == 0) qcic_client_flush(up, 5000);
        t0 = now_ns();
        qcic_client_heartbeat(up, "nightly-etl1");
        t[i] = now_ns() - t0;
    }
    summary("up", t, calls, ", ");

    /* Watcher down: the queue fills, then every call is a counted drop. */
    rss_before = rss_kib();
    for (i = 0; i < calls; i++) {
        t0 = now_ns();
        qcic_client_heartbeat(down, "nightly-etl1");
        t[i] = now_ns() - t0;
    }
    rss_after = rss_kib();
    summary("down_filling", t, filling, ", ");
    summary("down_full", t + calls / 2, calls - calls / 2, ", ");
    qcic_client_stats(down, &stats);
    printf("\"rss_kib_before\": %ld, \"rss_kib_after\": %ld, \"dropped\": %llu}\n", rss_before, rss_after,
           (unsigned long long)(stats.dropped_queue_full + stats.dropped_hwm));
    qcic_client_free(up);
    qcic_client_free(down);
    free(t);
    free(empty);
    return 0;
}
