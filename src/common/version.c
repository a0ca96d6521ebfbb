#include "tally/version.h"

const char *tly_version(void)
{
    return TALLY_VERSION;
}
