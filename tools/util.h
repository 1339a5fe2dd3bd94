/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zcdev(1): helpers that know nothing of the device or the command line:
 * number parsing, clocks, JSON output. The bottom of the tool's layers.
 */
#ifndef ZCDEV_UTIL_H
#define ZCDEV_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/time.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

int parse_size(const char *s, uint64_t *out);
int parse_u32(const char *s, uint32_t *out);
double now_sec(void);
double tv_sec(const struct timeval *tv);
bool is_pipe(int fd);

/* One JSON object on a stream, built key by key. */
struct json {
	FILE *f;
	bool comma;
};
void json_begin(struct json *j, const char *key, char bracket);
void json_end(struct json *j, char bracket);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_double(struct json *j, const char *key, double v);
void json_str(struct json *j, const char *key, const char *v);
void json_bool(struct json *j, const char *key, bool v);

#endif /* ZCDEV_UTIL_H */
