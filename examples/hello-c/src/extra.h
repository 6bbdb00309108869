#ifndef EXTRA_H
#define EXTRA_H

int answer(void);

#endif
