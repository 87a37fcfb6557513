/*
 * tunneld's log: one line per event on stderr, either text
 * ("tunneld: <level>: [w2:1234] message", the default; journald adds the
 * time) or JSON for log shippers (--log-format json:
 * {"time":"...","level":"info","proc":"w2","pid":1234,"msg":"..."}).
 * No buffering across lines, no allocation, no file handling (the
 * supervisor, systemd or the dev stack redirects stderr).  Lines longer
 * than the internal buffer are cut, never split.
 */

#ifndef TNL_LOG_H
#define TNL_LOG_H


typedef enum {
    TNL_LOG_ERROR = 0,
    TNL_LOG_WARN,
    TNL_LOG_INFO,
    TNL_LOG_DEBUG,
} tnl_log_level_e;


typedef enum {
    TNL_LOG_TEXT = 0,
    TNL_LOG_JSON,
} tnl_log_format_e;


/* lines above level are dropped; the default is TNL_LOG_INFO */
void tnl_log_set_level(tnl_log_level_e level);
int tnl_log_enabled(tnl_log_level_e level);

/* "text" or "json": 0, or -1 for anything else */
int tnl_log_set_format(const char *name);

/*
 * The process on every line: role "w2" (worker 2) or "sup" (supervisor)
 * with this process's pid; text lines carry "[w2:1234]" after the level,
 * JSON lines "proc" and "pid".  NULL: none (a single process; JSON lines
 * still carry "pid").
 */
void tnl_log_set_process(const char *role);

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
