/*
 * tunneld's log: one line per event on stderr, "tunneld: <level>: ...".
 * No buffering across lines, no allocation, no file handling (the
 * supervisor or the dev stack redirects stderr).  Lines longer than the
 * internal buffer are cut, never split.
 */

#ifndef TNL_LOG_H
#define TNL_LOG_H


typedef enum {
    TNL_LOG_ERROR = 0,
    TNL_LOG_WARN,
    TNL_LOG_INFO,
    TNL_LOG_DEBUG,
} tnl_log_level_e;


/* lines above level are dropped; the default is TNL_LOG_INFO */
void tnl_log_set_level(tnl_log_level_e level);
int tnl_log_enabled(tnl_log_level_e level);

/*
 * A tag put after the level on every line, e.g. "[w2:1234]" for worker 2
 * with pid 1234 ("tunneld: info: [w2:1234] message"); NULL: none.
 */
void tnl_log_set_tag(const char *tag);

void tnl_log(tnl_log_level_e level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define tnl_log_error(...)  tnl_log(TNL_LOG_ERROR, __VA_ARGS__)
#define tnl_log_warn(...)   tnl_log(TNL_LOG_WARN, __VA_ARGS__)
#define tnl_log_info(...)   tnl_log(TNL_LOG_INFO, __VA_ARGS__)
#define tnl_log_debug(...)                                                  \
    do {                                                                    \
        if (tnl_log_enabled(TNL_LOG_DEBUG)) {                               \
            tnl_log(TNL_LOG_DEBUG, __VA_ARGS__);                            \
        }                                                                   \
    } while (0)

#endif /* TNL_LOG_H */
