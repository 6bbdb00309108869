#include "extra.h"

int answer(void)
{
    return 42;
}
