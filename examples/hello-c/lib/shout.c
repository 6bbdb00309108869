#include <ctype.h>
#include <stdio.h>
#include "shout.h"

void shout(const char *text)
{
    for (const char *p = text; *p; p++)
        putchar(toupper((unsigned char)*p));
    putchar('\n');
}
