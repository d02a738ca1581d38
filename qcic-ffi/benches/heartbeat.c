/* Cost of one qcic_client_heartbeat() call, as a C program sees it.
 * Built and run by qcic-ffi/benches/heartbeat.rs (cargo bench -p qcic-ffi --bench heartbeat). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "qcic.h"

#define BATCHES 300
#define PER_BATCH 1000

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    qcic_client *client = NULL;
    double per_call[BATCHES];
    int b, i, not_ok = 0;
    if (argc < 2 || qcic_client_new(argv[1], &client) != QCIC_STATUS_OK) {
        fprintf(stderr, "usage: heartbeat ENDPOINT\n");
        return 2;
    }
    for (b = 0; b < BATCHES; b++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (i = 0; i < PER_BATCH; i++) {
            not_ok += qcic_client_heartbeat(client, "nightly-etl1") != QCIC_STATUS_OK;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        per_call[b] = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / PER_BATCH;
        /* Not timed: let the sender thread catch up, so every timed call is a
         * real enqueue, not the cheaper queue-full drop. */
        qcic_client_flush(client, 5000);
    }
    qsort(per_call, BATCHES, sizeof per_call[0], cmp);
    printf("C      heartbeat: median %6.0f ns  p10 %6.0f ns  p90 %6.0f ns  (%d batches of %d, %d not queued)\n",
           per_call[BATCHES / 2], per_call[BATCHES / 10], per_call[BATCHES * 9 / 10], BATCHES, PER_BATCH, not_ok);
    qcic_client_free(client);
    return not_ok != 0;
}
