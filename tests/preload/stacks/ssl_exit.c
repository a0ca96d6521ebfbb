/* OpenSSL started, then cleaned up by its own atexit handler before the preload names the frames at
 * exit: naming them must not start libcurl/libssh2/OpenSSL again (libdw's debuginfod client did: a
 * crash). Holds 16 MB at the peak; exits 0. */
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

int main(void)
{
    OPENSSL_init_crypto(OPENSSL_INIT_LOAD_CONFIG | OPENSSL_INIT_ENGINE_ALL_BUILTIN, NULL);
    char *p = malloc(1 << 24);
    memset(p, 1, 1 << 24);
    __asm__ volatile("" : : "r"(p) : "memory"); /* the block is kept */
    return p[5] - 1;
}
