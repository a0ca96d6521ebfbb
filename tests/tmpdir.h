/* A scratch directory per test, removed at the end. */
#ifndef TLY_TESTS_TMPDIR_H
#define TLY_TESTS_TMPDIR_H

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline int tly_test_rm_one(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb, (void)ftw;
    return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* mkdtemp under $TMPDIR (or /tmp) into @p buf. */
static inline char *tly_test_mkdtemp(char *buf, size_t cap)
{
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/tally-test-XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(buf);
}

static inline void tly_test_rmtree(const char *path)
{
    nftw(path, tly_test_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Entries of directory @p path, "." and ".." aside (0 when it cannot be opened). */
static inline int tly_test_count_entries(const char *path)
{
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    if (d)
        closedir(d);
    return n;
}

#endif
