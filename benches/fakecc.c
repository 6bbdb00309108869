/* A fake C++ compiler, archiver and linker for benches/chromium.py: fast, and honest about
 * dependencies.
 *
 *   fakecc [-MMD] -MF DEP [-D..] [-I DIR].. [-W..] [-f..] -c SRC -o OUT   compile
 *   fakecc [flags] -o OUT IN..                                          archive or link
 *
 * A compile reads SRC, follows its `#include "X"` lines one level (X is looked up beside SRC, then
 * in each -I directory, as a compiler does; a header found nowhere is left out), writes to OUT one
 * line with SRC and a hash of its -D flags, SRC and every header found, and writes DEP, a Makefile-syntax
 * depfile naming SRC and those headers. So an object changes whenever its source or one of its
 * headers does, and both build tools learn the same ~120 headers per compile.
 *
 * Without -c it hashes every input into OUT (an archive or a program): it changes whenever an input
 * does. Every output is written through a temporary file and renamed, so that a tool that stats
 * it never sees it half written. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long long fnv(unsigned long long h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Reads a whole file; returns NULL when it cannot. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *len = n;
    return buf;
}

static unsigned long long hash_file(unsigned long long h, const char *path)
{
    size_t n;
    char *buf = slurp(path, &n);
    if (!buf) {
        fprintf(stderr, "fakecc: cannot read %s\n", path);
        exit(1);
    }
    h = fnv(fnv(h, path, strlen(path)), buf, n);
    free(buf);
    return h;
}

static FILE *create(const char *path, char *tmp, size_t cap)
{
    snprintf(tmp, cap, "%s.fakecc-tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "fakecc: cannot write %s\n", tmp);
        exit(1);
    }
    return f;
}

static void finish(FILE *f, const char *tmp, const char *path)
{
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        fprintf(stderr, "fakecc: cannot write %s\n", path);
        exit(1);
    }
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int main(int argc, char **argv)
{
    const char *out = NULL, *dep = NULL;
    const char **dirs = calloc(argc, sizeof *dirs), **ins = calloc(argc, sizeof *ins);
    int ndirs = 0, nins = 0, compile = 0;
    char tmp[4096];
    unsigned long long h = 14695981039346656037ULL;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-o") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(a, "-MF") && i + 1 < argc)
            dep = argv[++i];
        else if (!strcmp(a, "-c"))
            compile = 1;
        else if (!strncmp(a, "-I", 2))
            dirs[ndirs++] = a[2] ? a + 2 : argv[++i];
        else if (!strncmp(a, "-D", 2))
            h = fnv(h, a, strlen(a) + 1); /* a define changes the object, as it would */
        else if (a[0] == '-')
            continue; /* -MMD, -W.., -f.., -Wl,.. */
        else
            ins[nins++] = a;
    }
    if (!out || (compile && (nins != 1 || !dep))) {
        fprintf(stderr, "fakecc: usage: fakecc -MF DEP -c SRC -o OUT | fakecc -o OUT IN..\n");
        return 2;
    }

    if (!compile) {
        for (int i = 0; i < nins; i++)
            h = hash_file(h, ins[i]);
        FILE *f = create(out, tmp, sizeof tmp);
        fprintf(f, "linked %d inputs %016llx\n", nins, h);
        finish(f, tmp, out);
        return 0;
    }

    const char *src = ins[0];
    size_t n;
    char *text = slurp(src, &n);
    if (!text) {
        fprintf(stderr, "fakecc: cannot read %s\n", src);
        return 1;
    }
    h = fnv(fnv(h, src, strlen(src)), text, n);
    char srcdir[4096];
    const char *slash = strrchr(src, '/');
    snprintf(srcdir, sizeof srcdir, "%.*s", slash ? (int)(slash - src) : 1, slash ? src : ".");

    char dtmp[4096];
    FILE *d = create(dep, dtmp, sizeof dtmp);
    fprintf(d, "%s: %s", out, src);
    char path[8192];
    for (char *line = text; line < text + n;) {
        char *end = memchr(line, '\n', text + n - line);
        if (!end)
            end = text + n;
        static const char inc[] = "#include \"";
        size_t len = end - line, k = sizeof inc - 1;
        if (len > k && !memcmp(line, inc, k)) {
            char *close = memchr(line + k, '"', len - k);
            if (close) {
                int nm = (int)(close - line - k);
                int found = 0;
                snprintf(path, sizeof path, "%s/%.*s", srcdir, nm, line + k);
                found = exists(path);
                for (int i = 0; i < ndirs && !found; i++) {
                    snprintf(path, sizeof path, "%s/%.*s", dirs[i], nm, line + k);
                    found = exists(path);
                }
                if (found) {
                    h = hash_file(h, path);
                    fprintf(d, " \\\n  %s", path);
                }
            }
        }
        line = end + 1;
    }
    fputc('\n', d);
    finish(d, dtmp, dep);
    free(text);

    FILE *f = create(out, tmp, sizeof tmp);
    fprintf(f, "compiled %s %016llx\n", src, h);
    finish(f, tmp, out);
    return 0;
}
