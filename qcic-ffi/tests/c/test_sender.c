/* C tests of libqcic: a real C program against include/qcic.h, run by
 * qcic-ffi/tests/c_programs.rs, which compiles it (-Wall -Wextra -Werror
 * -pedantic; shared, static, and with AddressSanitizer + UBSan), binds a
 * real PULL receiver and checks what arrived.
 *
 * Usage: test_sender MODE [ENDPOINTS]
 *   kinds EP       every kind of message, through the ordinary API
 *   vectors EP     every protocol vector: encode == bytes, decode == fields,
 *                  then sent as-is (the receiver compares bytes)
 *   nulls          every function with NULL arguments
 *   unreachable EP queue messages to dead watchers, then free and exit
 *   threads EP     8 threads share one client
 *   fork EP        parent and forked child both send
 *   forkloop EP    4 threads send without pause while the main thread forks
 *                  100 times; each child sends and closes, within 10 s
 *   curve EP KEY   CURVE with an explicit server key, then from QCIC_SERVER_KEY
 *   declare EP JOB SPEC  declares JOB with SPEC, then sends a heartbeat for it
 *                  (run against the real monitor)
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qcic.h"
#include "vectors.h" /* generated from docs/protocol-vectors.json */

static int failures = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                                    \
        }                                                                  \
    } while (0)

#define CHECK_OK(expr)                                                           \
    do {                                                                         \
        qcic_status s_ = (expr);                                                 \
        if (s_ != QCIC_STATUS_OK) {                                              \
            fprintf(stderr, "FAIL %s:%d: %s -> %u (%s)\n", __FILE__, __LINE__,   \
                    #expr, (unsigned)s_, qcic_status_message(s_));               \
            failures++;                                                          \
        }                                                                        \
    } while (0)

static qcic_client *new_client(const char *endpoints) {
    qcic_client *client = NULL;
    CHECK_OK(qcic_client_new(endpoints, &client));
    CHECK(client != NULL);
    if (client == NULL) {
        exit(1);
    }
    return client;
}

static int mode_kinds(const char *ep) {
    qcic_client *client = new_client(ep);
    qcic_run *run = NULL;
    qcic_stats stats;

    CHECK_OK(qcic_client_heartbeat(client, "c-job"));
    CHECK_OK(qcic_client_start(client, "c-job", &run));
    CHECK(qcic_run_id(run) != 0);
    CHECK_OK(qcic_run_progress(run, "half way"));
    CHECK_OK(qcic_run_success(run));
    run = NULL;
    CHECK_OK(qcic_client_start(client, "c-job", &run));
    CHECK_OK(qcic_run_fail_with_code(run, 3, "disk full"));
    CHECK_OK(qcic_client_start(client, "c-job", &run));
    CHECK_OK(qcic_run_fail(run, NULL));
    CHECK_OK(qcic_client_fail(client, "c-job", "outside a run"));
    CHECK_OK(qcic_client_start(client, "c-job", &run));
    qcic_run_free(run); /* unfinished: sends fail */
    CHECK(qcic_client_flush(client, 5000));
    CHECK_OK(qcic_client_stats(client, &stats));
    CHECK(stats.queued == 11);
    CHECK(stats.dropped_queue_full == 0);
    CHECK(qcic_client_heartbeat(client, "bad job") == QCIC_STATUS_INVALID_JOB);
    CHECK(qcic_client_close(client, 5000));
    CHECK(qcic_client_heartbeat(client, "c-job") == QCIC_STATUS_CLOSED);
    qcic_client_free(client);
    return 0;
}

/* A reason that is not UTF-8 (a file name in Latin-1) is sent, its bad
 * bytes replaced: a failure is never dropped over its text. */
static int mode_lossy(const char *ep) {
    qcic_client *client = new_client(ep);
    qcic_run *run = NULL;

    CHECK_OK(qcic_client_fail(client, "c-job", "caf\xe9.csv missing"));
    CHECK_OK(qcic_client_start(client, "c-job", &run));
    CHECK_OK(qcic_run_progress(run, "read \xff\xfe"));
    CHECK_OK(qcic_run_fail_with_code(run, 2, "caf\xe9"));
    CHECK(qcic_client_heartbeat(client, "caf\xe9") == QCIC_STATUS_INVALID_UTF8);
    CHECK(qcic_client_close(client, 5000));
    qcic_client_free(client);
    return 0;
}

static int mode_vectors(const char *ep) {
    qcic_client *client = new_client(ep);
    size_t i;
    for (i = 0; i < QCIC_TEST_VECTOR_COUNT; i++) {
        const struct test_vector *v = &QCIC_TEST_VECTORS[i];
        uint8_t buf[QCIC_MAX_FRAME_LEN];
        size_t written = 0;
        qcic_decoded *decoded = NULL;
        const qcic_message *m;

        if (v->expect != NULL) {
            CHECK_OK(qcic_declaration_encode(&v->fields, v->expect, buf, sizeof buf, &written));
            CHECK(qcic_declaration_encode(&v->fields, v->expect, NULL, 0, &written) == QCIC_STATUS_BUFFER_TOO_SMALL);
            /* Without its spec a declaration breaks the rules. */
            CHECK(qcic_message_encode(&v->fields, buf, sizeof buf, &written) == QCIC_STATUS_INVALID_MESSAGE);
            CHECK_OK(qcic_declaration_encode(&v->fields, v->expect, buf, sizeof buf, &written));
        } else {
            CHECK_OK(qcic_message_encode(&v->fields, buf, sizeof buf, &written));
            CHECK(qcic_message_encode(&v->fields, NULL, 0, &written) == QCIC_STATUS_BUFFER_TOO_SMALL);
            CHECK(written == v->len);
            CHECK_OK(qcic_message_encode(&v->fields, buf, sizeof buf, &written));
        }
        if (written != v->len || memcmp(buf, v->bytes, v->len) != 0) {
            fprintf(stderr, "FAIL vector %s: encoding differs\n", v->name);
            failures++;
        }

        CHECK_OK(qcic_message_decode(v->bytes, v->len, &decoded));
        m = qcic_decoded_message(decoded);
        CHECK(m != NULL);
        if (m != NULL) {
            CHECK(m->kind == v->fields.kind);
            CHECK(strcmp(m->job, v->fields.job) == 0);
            CHECK(m->has_run_id == v->fields.has_run_id);
            CHECK(m->run_id == v->fields.run_id);
            CHECK(m->seq == v->fields.seq);
            CHECK(m->ts_ms == v->fields.ts_ms);
            CHECK(strcmp(m->host, v->fields.host) == 0);
            CHECK(m->pid == v->fields.pid);
            CHECK(m->has_exit_code == v->fields.has_exit_code);
            CHECK(m->exit_code == v->fields.exit_code);
            CHECK((m->text == NULL) == (v->fields.text == NULL));
            if (m->text != NULL && v->fields.text != NULL) {
                CHECK(strcmp(m->text, v->fields.text) == 0);
            }
        }
        {
            const char *expect = qcic_decoded_expect(decoded);
            CHECK((expect == NULL) == (v->expect == NULL));
            if (expect != NULL && v->expect != NULL) {
                CHECK(strcmp(expect, v->expect) == 0);
            }
        }
        qcic_decoded_free(decoded);
        if (v->expect != NULL) {
            CHECK_OK(qcic_client_send_declaration(client, &v->fields, v->expect));
        } else {
            CHECK_OK(qcic_client_send(client, &v->fields));
        }
    }
    {
        static const uint8_t v2[] = {0x92, 0x02, 0xa1, 'x'};
        qcic_decoded *d = NULL;
        CHECK(qcic_message_decode(v2, sizeof v2, &d) == QCIC_STATUS_DECODE_UNSUPPORTED_VERSION);
        CHECK(d == NULL);
        CHECK(qcic_message_decode((const uint8_t *)"junk", 4, &d) == QCIC_STATUS_DECODE_MALFORMED);
    }
    CHECK(qcic_client_close(client, 5000));
    qcic_client_free(client);
    return 0;
}

static int mode_nulls(void) {
    qcic_client *client = NULL;
    qcic_run *run = NULL;
    qcic_stats stats;
    qcic_decoded *decoded = NULL;
    size_t written = 0;
    uint8_t buf[8];
    qcic_message msg;
    unsigned code;

    CHECK(qcic_client_new(NULL, &client) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_new("tcp://127.0.0.1:1", NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(client == NULL);
    CHECK(qcic_client_new("", &client) == QCIC_STATUS_NO_ENDPOINTS);
    CHECK(qcic_client_new("nonsense", &client) == QCIC_STATUS_BAD_ENDPOINT);
    CHECK(qcic_client_new("tcp://127.0.0.1:1", &client) == QCIC_STATUS_OK);
    CHECK(qcic_client_new_from_env(NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_heartbeat(NULL, "j") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_heartbeat(client, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_heartbeat(client, "\xff\xfe") == QCIC_STATUS_INVALID_UTF8);
    CHECK(qcic_client_fail(NULL, "j", "t") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_start(NULL, "j", &run) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_start(client, NULL, &run) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_start(client, "j", NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(run == NULL);
    CHECK(qcic_client_send(client, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_send(NULL, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(!qcic_client_flush(NULL, 10));
    CHECK(!qcic_client_close(NULL, 10));
    CHECK(qcic_client_stats(NULL, &stats) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_stats(client, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_run_progress(NULL, "t") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_run_success(NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_run_fail(NULL, "t") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_run_fail_with_code(NULL, 1, "t") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_run_id(NULL) == 0);
    qcic_run_free(NULL);
    CHECK_OK(qcic_client_start(client, "j", &run));
    CHECK(qcic_run_progress(run, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    qcic_run_free(run);

    /* Declarations: NULLs, and a bad spec's status names its key. */
    CHECK(qcic_client_declare(NULL, "j", "every=1m") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_declare(client, NULL, "every=1m") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_declare(client, "j", NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_declare(client, "bad job", "every=1m") == QCIC_STATUS_INVALID_JOB);
    CHECK(qcic_client_declare(client, "j", "") == QCIC_STATUS_SPEC);
    CHECK(qcic_client_declare(client, "j", "cron='1 2") == QCIC_STATUS_SPEC);
    CHECK(qcic_client_declare(client, "j", "every=1m often=yes") == QCIC_STATUS_SPEC);
    CHECK(qcic_client_declare(client, "j", "every=soon") == QCIC_STATUS_SPEC_EVERY);
    CHECK(qcic_client_declare(client, "j", "every=1m cron=@daily") == QCIC_STATUS_SPEC_CRON);
    CHECK(qcic_client_declare(client, "j", "every=1m timezone=UTC") == QCIC_STATUS_SPEC_TIMEZONE);
    CHECK(qcic_client_declare(client, "j", "every=1m grace=200years") == QCIC_STATUS_SPEC_GRACE);
    CHECK(qcic_client_declare(client, "j", "every=1m start_within=x") == QCIC_STATUS_SPEC_START_WITHIN);
    CHECK(qcic_client_declare(client, "j", "every=1m max_runtime=x") == QCIC_STATUS_SPEC_MAX_RUNTIME);
    CHECK(qcic_client_declare(client, "j", "every=1m stall_after=x") == QCIC_STATUS_SPEC_STALL_AFTER);
    CHECK(qcic_client_declare(client, "j", "every=1m min_runtime=x") == QCIC_STATUS_SPEC_MIN_RUNTIME);
    CHECK(qcic_client_declare(client, "j", "every=1m alert_after_failures=0") == QCIC_STATUS_SPEC_ALERT_AFTER_FAILURES);
    CHECK(qcic_client_declare(client, "j", "every=1m recover_after_successes=-1") == QCIC_STATUS_SPEC_RECOVER_AFTER_SUCCESSES);
    CHECK(qcic_client_declare(client, "j", "every=1m notify=a,,b") == QCIC_STATUS_SPEC_NOTIFY);
    CHECK(strstr(qcic_status_message(QCIC_STATUS_SPEC_GRACE), "grace") != NULL);
    CHECK_OK(qcic_client_declare(client, "j", "cron='30 2 * * 1-5' timezone=Europe/London grace=1h"));
    CHECK(qcic_declaration_encode(NULL, "every=1m", buf, sizeof buf, &written) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_send_declaration(client, NULL, "every=1m") == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_decoded_expect(NULL) == NULL);

    memset(&msg, 0, sizeof msg);
    msg.kind = QCIC_KIND_HEARTBEAT;
    CHECK(qcic_message_encode(&msg, buf, sizeof buf, &written) == QCIC_STATUS_NULL_ARGUMENT);
    msg.job = "j";
    msg.host = "h";
    msg.kind = 77;
    CHECK(qcic_message_encode(&msg, buf, sizeof buf, &written) == QCIC_STATUS_INVALID_MESSAGE);
    msg.kind = QCIC_KIND_HEARTBEAT;
    CHECK(qcic_message_encode(&msg, buf, sizeof buf, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_message_encode(NULL, buf, sizeof buf, &written) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_message_encode(&msg, NULL, 5, &written) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_message_encode(&msg, buf, 3, &written) == QCIC_STATUS_BUFFER_TOO_SMALL);
    CHECK(written > 3);
    CHECK(qcic_message_decode(NULL, 5, &decoded) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_message_decode(buf, 0, NULL) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_message_decode(NULL, 0, &decoded) == QCIC_STATUS_DECODE_MALFORMED);
    CHECK(qcic_decoded_message(NULL) == NULL);
    qcic_decoded_free(NULL);
    qcic_client_free(NULL);
    qcic_client_free(client);

    for (code = 0; code < 1200; code++) {
        const char *text = qcic_status_message(code);
        CHECK(text != NULL && text[0] != '\0');
    }
    CHECK(strcmp(qcic_status_message(QCIC_STATUS_OK), "ok") == 0);
    CHECK(strcmp(qcic_status_message(4242), "unknown qcic status") == 0);
    CHECK(strcmp(qcic_version(), QCIC_VERSION) == 0);
    return 0;
}

static int mode_unreachable(const char *ep) {
    qcic_client *client = new_client(ep);
    qcic_run *run = NULL;
    int i;
    CHECK_OK(qcic_client_start(client, "c-job", &run));
    for (i = 0; i < 500; i++) {
        qcic_status s = qcic_run_progress(run, "step");
        CHECK(s == QCIC_STATUS_OK || s == QCIC_STATUS_QUEUE_FULL);
    }
    qcic_run_free(run);
    qcic_client_free(client); /* bounded: 1 s default */
    return 0;
}

#define THREADS 8
#define PER_THREAD 250

struct thread_arg {
    qcic_client *client;
    int index;
};

static void *thread_main(void *p) {
    struct thread_arg *arg = p;
    char job[32];
    int i;
    snprintf(job, sizeof job, "thread-%d", arg->index);
    for (i = 0; i < PER_THREAD; i++) {
        qcic_status s;
        /* A full queue never blocks; a job that must not lose a message may retry. */
        while ((s = qcic_client_heartbeat(arg->client, job)) == QCIC_STATUS_QUEUE_FULL) {
            sched_yield();
        }
        if (s != QCIC_STATUS_OK) {
            fprintf(stderr, "FAIL thread %d: status %u\n", arg->index, (unsigned)s);
            return (void *)1;
        }
    }
    return NULL;
}

static int mode_threads(const char *ep) {
    qcic_client *client = new_client(ep);
    pthread_t threads[THREADS];
    struct thread_arg args[THREADS];
    int i;
    for (i = 0; i < THREADS; i++) {
        args[i].client = client;
        args[i].index = i;
        CHECK(pthread_create(&threads[i], NULL, thread_main, &args[i]) == 0);
    }
    for (i = 0; i < THREADS; i++) {
        void *ret = NULL;
        CHECK(pthread_join(threads[i], &ret) == 0);
        CHECK(ret == NULL);
    }
    CHECK(qcic_client_close(client, 10000));
    qcic_client_free(client);
    return 0;
}

static int mode_fork(const char *ep) {
    qcic_client *client = new_client(ep);
    pid_t child;
    int status = 0;
    CHECK_OK(qcic_client_heartbeat(client, "parent-before"));
    CHECK(qcic_client_flush(client, 5000));
    child = fork();
    if (child == 0) {
        /* The child has no sender thread until it sends: it starts its own. */
        qcic_status s = qcic_client_heartbeat(client, "child");
        bool closed = qcic_client_close(client, 5000);
        qcic_client_free(client);
        _exit(s == QCIC_STATUS_OK && closed ? 0 : 1);
    }
    CHECK(child > 0);
    CHECK(waitpid(child, &status, 0) == child);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_OK(qcic_client_heartbeat(client, "parent-after"));
    CHECK(qcic_client_close(client, 5000));
    qcic_client_free(client);
    return 0;
}

#define FORKS 100
#define BUSY_THREADS 4

static atomic_int busy_stop;

static void *busy_main(void *p) {
    qcic_client *client = p;
    while (!atomic_load(&busy_stop)) {
        /* A full queue is fine: the point is to be inside the library. */
        (void)qcic_client_heartbeat(client, "busy");
    }
    return NULL;
}

/* A fork can land while another thread is anywhere in the library: the
 * child must still send and close, never wait on a lock the fork left
 * held by a thread that does not exist in the child. */
static int mode_forkloop(const char *ep) {
    qcic_client *client = new_client(ep);
    pthread_t threads[BUSY_THREADS];
    int i, hung = 0, failed = 0;
    for (i = 0; i < BUSY_THREADS; i++) {
        CHECK(pthread_create(&threads[i], NULL, busy_main, client) == 0);
    }
    for (i = 0; i < FORKS; i++) {
        int status = 0, tries;
        pid_t done = 0;
        pid_t child = fork();
        if (child == 0) {
            qcic_status s = qcic_client_heartbeat(client, "forked");
            bool closed = qcic_client_close(client, 8000);
            qcic_client_free(client);
            if (s != QCIC_STATUS_OK || !closed) {
                fprintf(stderr, "forked child: heartbeat status %u, close %s\n", (unsigned)s,
                        closed ? "delivered" : "not confirmed");
            }
            _exit(s == QCIC_STATUS_OK && closed ? 0 : 1);
        }
        CHECK(child > 0);
        for (tries = 0; tries < 1000 && done != child; tries++) {
            struct timespec pause = {0, 10 * 1000 * 1000};
            done = waitpid(child, &status, WNOHANG);
            if (done != child) {
                nanosleep(&pause, NULL);
            }
        }
        if (done != child) {
            hung++;
            kill(child, SIGKILL);
            waitpid(child, &status, 0);
        } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            fprintf(stderr, "forked child %d: %s %d\n", i, WIFEXITED(status) ? "exit" : "signal",
                    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            failed++;
        }
    }
    atomic_store(&busy_stop, 1);
    for (i = 0; i < BUSY_THREADS; i++) {
        CHECK(pthread_join(threads[i], NULL) == 0);
    }
    /* The receiver stops reading once every child's message is in: the
     * busy threads' backlog may not be delivered, and need not be. */
    (void)qcic_client_close(client, 1000);
    qcic_client_free(client);
    fprintf(stderr, "forkloop: %d forks, %d children hung (killed after 10 s), %d failed\n", FORKS,
            hung, failed);
    CHECK(hung == 0);
    CHECK(failed == 0);
    return 0;
}

static int mode_curve(const char *ep, const char *server_key) {
    qcic_client *client = NULL;
    CHECK(qcic_client_new_with_keys(ep, "too short", NULL, NULL, &client) == QCIC_STATUS_BAD_KEY);
    CHECK(qcic_client_new_with_keys(ep, server_key, "only-one-of-the-pair", NULL, &client) ==
          QCIC_STATUS_NULL_ARGUMENT);
    CHECK(qcic_client_new_with_keys(ep, NULL, NULL, NULL, &client) == QCIC_STATUS_NULL_ARGUMENT);
    CHECK(client == NULL);
    CHECK_OK(qcic_client_new_with_keys(ep, server_key, NULL, NULL, &client));
    CHECK_OK(qcic_client_heartbeat(client, "curve-explicit"));
    CHECK(qcic_client_close(client, 5000));
    qcic_client_free(client);
    client = NULL;
    /* qcic_client_new() takes QCIC_SERVER_KEY from the environment. */
    CHECK_OK(qcic_client_new(ep, &client));
    CHECK_OK(qcic_client_heartbeat(client, "curve-env"));
    CHECK(qcic_client_close(client, 5000));
    qcic_client_free(client);
    return 0;
}

static int mode_declare(const char *ep, const char *job, const char *spec) {
    qcic_client *client = new_client(ep);
    CHECK_OK(qcic_client_declare(client, job, spec));
    CHECK_OK(qcic_client_heartbeat(client, job));
    CHECK(qcic_client_close(client, 5000));
    qcic_client_free(client);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    const char *ep = argc > 2 ? argv[2] : "";
    int rc;
    if (strcmp(mode, "kinds") == 0) {
        rc = mode_kinds(ep);
    } else if (strcmp(mode, "lossy") == 0) {
        return mode_lossy(ep);
    } else if (strcmp(mode, "vectors") == 0) {
        rc = mode_vectors(ep);
    } else if (strcmp(mode, "nulls") == 0) {
        rc = mode_nulls();
    } else if (strcmp(mode, "unreachable") == 0) {
        rc = mode_unreachable(ep);
    } else if (strcmp(mode, "threads") == 0) {
        rc = mode_threads(ep);
    } else if (strcmp(mode, "fork") == 0) {
        rc = mode_fork(ep);
    } else if (strcmp(mode, "forkloop") == 0) {
        rc = mode_forkloop(ep);
    } else if (strcmp(mode, "curve") == 0 && argc > 3) {
        rc = mode_curve(ep, argv[3]);
    } else if (strcmp(mode, "declare") == 0 && argc > 4) {
        rc = mode_declare(ep, argv[3], argv[4]);
    } else {
        fprintf(stderr, "usage: %s kinds|vectors|nulls|unreachable|threads|fork|forkloop|curve|declare [ENDPOINTS [KEY|JOB SPEC]]\n",
                argv[0]);
        return 2;
    }
    if (rc != 0 || failures != 0) {
        fprintf(stderr, "%s: %d check(s) failed\n", mode, failures);
        return 1;
    }
    printf("%s: ok\n", mode);
    return 0;
}
