/** tally/tally.h — everything public in libtally. */
#ifndef TALLY_TALLY_H
#define TALLY_TALLY_H

#include "tally/error.h"
#include "tally/mem.h"
#include "tally/version.h"

#endif
