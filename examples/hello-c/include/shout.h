#ifndef SHOUT_H
#define SHOUT_H

void shout(const char *text);

#endif
