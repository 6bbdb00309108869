#include <stdio.h>
#include "extra.h"
#include "greet.h"
#include "shout.h"
#include "version.h"

int main(void)
{
    greet("world");
    shout("built by kiln");
    printf("version %s, answer %d\n", VERSION, answer());
    return 0;
}
