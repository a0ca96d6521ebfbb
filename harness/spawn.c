/* Child processes: the one place the harness starts one and collects what it prints. */
#include <errno.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

extern char **environ;

/* Append what @p fd has to @p mem; false at its end. */
static bool drain(int fd, FILE *mem)
{
    char buf[65536];
    ssize_t k = read(fd, buf, sizeof buf);
    if (k < 0 && errno == EINTR)
        return true;
    if (k <= 0)
        return false;
    fwrite(buf, 1, (size_t)k, mem);
    return true;
}

int tly_h_spawn(const char *path, char *const argv[], const char *env_name, const char *env_value, char **out,
                char **err, int *status)
{
    int po[2], pe[2];
    if (pipe(po) != 0)
        return -errno;
    if (pipe(pe) != 0) {
        int e = -errno;
        close(po[0]);
        close(po[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, pe[0]);
    /* the harness is single-threaded where it spawns: setting the variable around the call is safe */
    char *old = env_name && getenv(env_name) ? strdup(getenv(env_name)) : NULL;
    if (env_name && env_value)
        setenv(env_name, env_value, 1);
    else if (env_name)
        unsetenv(env_name);
    pid_t pid;
    /* a bare name is looked up on PATH (a wrapper such as heaptrack) */
    int rc = strchr(path, '/') ? posix_spawn(&pid, path, &fa, NULL, argv, environ)
                               : posix_spawnp(&pid, path, &fa, NULL, argv, environ);
    if (env_name && old)
        setenv(env_name, old, 1);
    else if (env_name)
        unsetenv(env_name);
    free(old);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    if (rc != 0) {
        close(po[0]);
        close(pe[0]);
        return -rc;
    }
    /* both pipes at once: a child that fills one while we wait on the other must not stall */
    size_t on = 0, en = 0;
    char *ob = NULL, *eb = NULL;
    FILE *om = open_memstream(&ob, &on), *em = open_memstream(&eb, &en);
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    for (int open_fds = 2; open_fds > 0;) {
        if (poll(fds, 2, -1) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++) {
            if (fds[i].fd >= 0 && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) && !drain(fds[i].fd, i ? em : om)) {
                close(fds[i].fd);
                fds[i].fd = -1;
                open_fds--;
            }
        }
    }
    fclose(om);
    fclose(em);
    waitpid(pid, status, 0);
    if (out)
        *out = ob;
    else
        free(ob);
    if (err)
        *err = eb;
    else
        free(eb);
    return 0;
}

const char *tly_h_self(void)
{
    static char self[4096];
    if (self[0] == '\0') {
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
    }
    return self;
}

const char *tly_h_matrix_path(void)
{
    static char buf[4200];
    if (access("scenarios/matrix.json", R_OK) == 0)
        return "scenarios/matrix.json";
    snprintf(buf, sizeof buf, "%s/scenarios/matrix.json", TALLY_SOURCE_DIR);
    return buf;
}
