/*
 * commands.h - the commands postie acts as. Each takes its argv
 * (argv[0] = the name it runs as), does its work, and returns 0 or -1
 * with e filled; main() prints e and maps it to an exit code.
 */
#ifndef POSTIE_COMMANDS_H
#define POSTIE_COMMANDS_H

#include "err.h"

int	cmd_sendmail(int argc, char **argv, struct err *e);
int	cmd_mailq(int argc, char **argv, struct err *e);
int	cmd_deliver(int argc, char **argv, struct err *e);
int	cmd_fetch(int argc, char **argv, struct err *e);
/* postie queue show|hold|release|remove [-C file] [-v] (--all | ID...) */
int	cmd_queue(int argc, char **argv, struct err *e);
int	cmd_newaliases(int argc, char **argv, struct err *e);

#endif
