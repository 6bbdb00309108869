#!/bin/sh
# Writes a C header that defines VERSION from the file named by $1.
printf '#define VERSION "%s"\n' "$(cat "$1")"
