/* run_jobs_team: jobs on the OpenMP team of the OpenMP runtime torch has loaded, when there is
 * one; on pool.c's threads otherwise.
 *
 * Why: after each of its parallel ops torch's OpenMP workers keep spinning on the cores for a
 * while (GNU OpenMP's default wait policy). A pool thread of our own then shares a core with a
 * spinner, and the pool's caller ends up doing nearly all the work: the 64 -> 64 layer's
 * compiled edge sum ran at one thread's speed between torch ops (4.6 + 8.7 ms instead of 2.0 +
 * 4.0). Run on the same team, the spinning workers are the ones that pick the jobs up.
 *
 * The runtime is found among the loaded libraries (libgomp, or an Intel / LLVM runtime, which
 * provide the same GOMP_parallel entry point; Linux only, elsewhere the pool); nothing is linked
 * against, so the build needs no OpenMP and a process without it uses the pool. Jobs are claimed one at a time from a
 * shared counter, as in pool.c. In a forked child the team is not used (GNU OpenMP's threads do
 * not survive fork); the pool handles that. */
#define _GNU_SOURCE
#include "kernels.h"

#if defined(__linux__)
#include <dlfcn.h>
#include <link.h>

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);

static gomp_parallel_fn gomp_parallel;
static int looked_up, forked;

static int find_runtime(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    const char *name = info->dlpi_name;
    if (!name || !*name) return 0;
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    if (strncmp(base, "libgomp", 7) && strncmp(base, "libiomp", 7) && strncmp(base, "libomp", 6)) return 0;
    void *h = dlopen(name, RTLD_NOW | RTLD_NOLOAD);
    if (!h) return 0;
    void *f = dlsym(h, "GOMP_parallel");
    if (!f) return 0;
    *(void **)data = f;
    return 1;
}

static void child_after_fork(void) { forked = 1; }

/* at load time: a child forked before the first threaded call must know it too */
__attribute__((constructor)) static void register_atfork(void) { pthread_atfork(NULL, NULL, child_after_fork); }

typedef struct {
    void *(*fn)(void *);
    char *jobs;
    size_t size;
    int njobs, next;
} team_task;

static void team_body(void *arg) {
    team_task *T = arg;
    for (;;) {
        int j = __atomic_fetch_add(&T->next, 1, __ATOMIC_RELAXED);
        if (j >= T->njobs) return;
        T->fn(T->jobs + (size_t)j * T->size);
    }
}

void run_jobs_team(void *(*fn)(void *), void *jobs, size_t size, int njobs, int nt) {
    if (nt > 1 && njobs > 1 && !__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
        void *f = NULL;
        dl_iterate_phdr(find_runtime, &f);
        __atomic_store_n((void **)&gomp_parallel, f, __ATOMIC_RELAXED);
        __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
    }
    gomp_parallel_fn par = __atomic_load_n((void **)&gomp_parallel, __ATOMIC_RELAXED);
    if (nt <= 1 || njobs <= 1 || !par || forked) {
        run_jobs_on(fn, jobs, size, njobs, nt);
        return;
    }
    team_task T = {fn, jobs, size, njobs, 0};
    par(team_body, &T, (unsigned)(nt < njobs ? nt : njobs), 0);
}

#else /* no dl_iterate_phdr to look for the runtime with: the pool */

void run_jobs_team(void *(*fn)(void *), void *jobs, size_t size, int njobs, int nt) {
    run_jobs_on(fn, jobs, size, njobs, nt);
}

#endif
