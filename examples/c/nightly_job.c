/* A nightly job that reports to qcic watchers. Copy it.
 *
 * Build (after scripts/build-c.sh PREFIX, see README):
 *   cc nightly_job.c $(pkg-config --cflags --libs qcic) -o nightly_job
 * Run:
 *   QCIC_ENDPOINTS=tcp://watcher-a:7700,tcp://watcher-b:7700 ./nightly_job
 *
 * No qcic call blocks or fails the job: a status other than QCIC_STATUS_OK
 * is worth a log line, never an exit.
 */
#include <stdio.h>

#include <qcic.h>

static void warn(const char *what, qcic_status status) {
    if (status != QCIC_STATUS_OK) {
        fprintf(stderr, "qcic: %s: %s\n", what, qcic_status_message(status));
    }
}

static int do_the_work(qcic_run *run) {
    int step;
    for (step = 1; step <= 3; step++) {
        char note[64];
        /* ... one part of the real work ... */
        snprintf(note, sizeof note, "step %d of 3 done", step);
        warn("progress", qcic_run_progress(run, note));
    }
    return 0; /* the job's own result */
}

int main(void) {
    qcic_client *client = NULL;
    qcic_run *run = NULL;
    qcic_status status;
    int result;

    status = qcic_client_new_from_env(&client); /* reads QCIC_ENDPOINTS */
    if (status != QCIC_STATUS_OK) {
        warn("cannot create a qcic client", status);
        /* Carry on unmonitored: the watchers will report the job as late. */
    }
    /* What the job expects of itself: a watcher whose [declare] policy
     * allows it watches the job without a [[job]] in its configuration,
     * and raises the alarm if a run is missing, late or too long. */
    warn("declare", qcic_client_declare(client, "nightly-etl",
                                        "cron='30 2 * * *' timezone=Europe/London "
                                        "grace=1h max_runtime=2h"));
    warn("start", qcic_client_start(client, "nightly-etl", &run));

    result = do_the_work(run);

    if (result == 0) {
        warn("success", qcic_run_success(run)); /* ends and frees the run */
    } else {
        warn("fail", qcic_run_fail_with_code(run, result, "the work failed"));
    }
    /* Waits at most 1 s for delivery, even with every watcher unreachable. */
    qcic_client_free(client);
    return result;
}
