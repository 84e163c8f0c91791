/* run_jobs: fork-join on a small pool of threads that live as long as the process.
 *
 * Why a pool: an evaluation of the objective makes ~6 threaded calls of ~0.1-0.5 ms each, and
 * starting and joining a fresh thread per call cost ~50 us, a tenth of the work. Workers sleep
 * on a condition variable between calls, after spinning for up to 0.2 ms: the calls of one
 * training step come tens of microseconds apart, and a sleeping worker took ~50 us to wake --
 * and on a virtual machine whose idle CPU was handed back to the host, milliseconds. So the
 * caller does not wait for a late worker: jobs are claimed one by one, and a caller done with
 * its own claims the ones nobody has started. One fork-join runs at a time; a second caller (another
 * Python thread, with the GIL released) does its jobs serially instead of waiting. After fork()
 * the child has no workers: the atfork handler forgets them and they are started again. */
#include "kernels.h"
#include <stdint.h>
#include <time.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t go = PTHREAD_COND_INITIALIZER, finished = PTHREAD_COND_INITIALIZER;
static int n_workers, task_nt, task_next;
static unsigned long generation, remaining, start_gen[MAXTHREADS];
static void *(*task_fn)(void *);
static char *task_jobs;
static size_t task_size;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

#define SPIN_NS 200000L /* spin up to 0.2 ms before sleeping */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Spins until (*word == value) == until_equal, or for SPIN_NS. */
static void spin(unsigned long *word, unsigned long value, int until_equal) {
    long start = now_ns();
    for (int s = 1;; s++) {
        if ((__atomic_load_n(word, __ATOMIC_ACQUIRE) == value) == until_equal) return;
        cpu_relax();
        if (s % 64 == 0 && now_ns() - start > SPIN_NS) return;
    }
}

/* Runs the current task's unclaimed jobs; called and returns with mu held. */
static void run_claimed(void) {
    while (task_next < task_nt) {
        void *job = task_jobs + (size_t)task_next++ * task_size;
        void *(*fn)(void *) = task_fn;
        pthread_mutex_unlock(&mu);
        fn(job);
        pthread_mutex_lock(&mu);
        if (__atomic_sub_fetch(&remaining, 1, __ATOMIC_RELEASE) == 0) pthread_cond_signal(&finished);
    }
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg;
    pthread_mutex_lock(&mu);
    unsigned long seen = start_gen[id];
    for (;;) {
        pthread_mutex_unlock(&mu);
        spin(&generation, seen, 0);
        pthread_mutex_lock(&mu);
        while (generation == seen) pthread_cond_wait(&go, &mu);
        seen = generation;
        run_claimed();
    }
    return NULL;
}

static void forget_workers(void) {
    pthread_mutex_init(&mu, NULL);
    pthread_mutex_init(&busy, NULL);
    pthread_cond_init(&go, NULL);
    pthread_cond_init(&finished, NULL);
    n_workers = task_nt = task_next = 0;
    remaining = 0;
}

static void register_atfork(void) { pthread_atfork(NULL, NULL, forget_workers); }

void run_jobs(void *(*fn)(void *), void *jobs, size_t size, int nt) { run_jobs_on(fn, jobs, size, nt, nt); }

void run_jobs_on(void *(*fn)(void *), void *jobs, size_t size, int njobs, int nt) {
    char *J = jobs;
    if (nt > MAXTHREADS) nt = MAXTHREADS;
    if (nt > njobs) nt = njobs;
    if (nt <= 1 || pthread_mutex_trylock(&busy) != 0) {
        for (int t = 0; t < njobs || t == 0; t++) fn(J + (size_t)t * size);
        return;
    }
    pthread_once(&atfork_once, register_atfork);
    pthread_mutex_lock(&mu);
    while (n_workers < nt - 1) {
        pthread_t th;
        int id = n_workers + 1;
        start_gen[id] = generation;
        if (pthread_create(&th, NULL, worker, (void *)(intptr_t)id) != 0) break;
        pthread_detach(th);
        n_workers++;
    }
    task_fn = fn;
    task_jobs = J;
    task_size = size;
    task_nt = njobs;
    task_next = 1; /* job 0 is the caller's */
    remaining = (unsigned long)(njobs - 1);
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&go);
    pthread_mutex_unlock(&mu);
    fn(J);
    pthread_mutex_lock(&mu);
    run_claimed(); /* what no worker has started yet */
    pthread_mutex_unlock(&mu);
    spin(&remaining, 0, 1);
    pthread_mutex_lock(&mu);
    while (remaining > 0) pthread_cond_wait(&finished, &mu);
    pthread_mutex_unlock(&mu);
    pthread_mutex_unlock(&busy);
}
