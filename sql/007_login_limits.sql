-- Sign-in limits that do not lock the wrong people out (a review of 002's
-- limit: 5 failures per client address and per typed name meant that on
-- `make run`, where every browser is ::1, one user's typos blocked every
-- other user, and anybody could lock the administrator out by typing their
-- name five times).
--
-- Failures are counted three ways over the window, each for what it stops:
--
-- * per (address, typed name), strictly (tunnel_admin_login_limit N,
--   default 5): guessing one account's password from one place.  This is
--   the only counter that can refuse a user at an address where they have
--   signed in before, and it only counts that name's own failures there:
--   nobody else's typos, nor an attacker elsewhere, can reach it.
-- * per address, loosely (address=N, default 30): trying many names from
--   one place.  Loose because several people may share one address (make
--   run's ::1, an office NAT, a reverse proxy without real_ip).
-- * per existing account, across addresses (user=N, default 20): guessing
--   one account's password from many places.  A slow-down for new places
--   only: it never refuses the account at an address where it has signed in
--   before, so an attacker typing the administrator's name cannot lock them
--   out of their usual browser.
--
-- A successful sign-in clears the failures of its own (address, name), not
-- the account's failures elsewhere (that would hand an attacker a fresh
-- budget each time the owner signs in).  Names are counted folded (trimmed,
-- lower case), as users.name is stored, so " CAROL " and "carol" are one
-- name.  `tunnelctl login-failures clear` (and `tunnelctl user unlock`)
-- delete counted failures, with an audit row.


-- "Has this account signed in from this address before?": the audit rows
-- of a session the user opened themselves (sign-in, first-run setup,
-- joining with an invitation, a one-time password link).
CREATE INDEX tunnel_events_signed_in_idx
    ON tunnel_events (user_id, client_addr)
    WHERE event IN ('login', 'setup', 'join', 'password_set');


ALTER TABLE tunnel_events DROP CONSTRAINT tunnel_events_event_check;

ALTER TABLE tunnel_events ADD CONSTRAINT tunnel_events_event_check
    CHECK (event IN (
        -- tunneld
        'open', 'close', 'takeover', 'kick', 'refused', 'auth',
        -- web and tunnelctl
        'setup', 'login', 'login_failed', 'logout', 'join',
        'invite_created', 'invite_revoked',
        'password_link', 'password_set',
        'key_added', 'key_removed',
        'name_reserved', 'name_released',
        'user_added', 'user_disabled', 'user_enabled', 'user_removed',
        'user_promoted', 'user_demoted',
        'system_name_added', 'system_name_removed',
        -- the device flow
        'key_activated', 'activation_denied',
        -- 007
        'login_failures_cleared'));


-- Seconds until fewer than p_limit of the failures matching (p_addr,
-- p_name) are within the window (a NULL argument matches anything), or NULL
-- when there are fewer already: the p_limit-th newest failure leaving the
-- window is what lets the next attempt through.
CREATE FUNCTION tunnel_admin_login_wait(p_addr text, p_name text,
                                        p_window integer, p_limit integer)
    RETURNS integer
    LANGUAGE sql STABLE AS $$
    SELECT greatest(1, ceil(extract(epoch FROM
               at + make_interval(secs => p_window) - now())))::integer
      FROM login_failures
     WHERE (p_addr IS NULL OR client_addr = p_addr)
       AND (p_name IS NULL OR user_name = p_name)
       AND at > now() - make_interval(secs => p_window)
     ORDER BY at DESC
    OFFSET p_limit - 1 LIMIT 1;
$$;


-- The sign-in check of /login: p_name already folded.  One row: r_wait
-- (seconds to wait, NULL: go ahead and check the password) and the user's
-- row (all NULL for no such user).
CREATE FUNCTION tunnel_admin_login_check(p_addr text, p_name text,
                                         p_window integer,
                                         p_pair_limit integer,
                                         p_addr_limit integer,
                                         p_user_limit integer)
    RETURNS TABLE (r_wait integer, r_user_id bigint, r_password_hash text,
                   r_disabled boolean)
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_user   users%ROWTYPE;
    v_known  boolean := false;
    v_wait   integer;
BEGIN
    SELECT * INTO v_user FROM users WHERE name = p_name;

    IF v_user.id IS NOT NULL THEN
        v_known := EXISTS (
            SELECT 1 FROM tunnel_events
             WHERE user_id = v_user.id AND client_addr = p_addr
               AND actor_id = v_user.id
               AND event IN ('login', 'setup', 'join', 'password_set'));
    END IF;

    v_wait := tunnel_admin_login_wait(p_addr, p_name, p_window,
                                      p_pair_limit);

    IF NOT v_known THEN
        v_wait := greatest(v_wait,
                           tunnel_admin_login_wait(p_addr, NULL, p_window,
                                                   p_addr_limit));

        IF v_user.id IS NOT NULL THEN
            v_wait := greatest(v_wait,
                               tunnel_admin_login_wait(NULL, p_name,
                                                       p_window,
                                                       p_user_limit));
        END IF;
    END IF;

    RETURN QUERY SELECT v_wait, v_user.id, v_user.password_hash,
                        v_user.disabled;
END
$$;


-- Forget counted failures: of p_name (folded) and/or from p_addr, or all
-- of them when both are NULL.  p_actor_id NULL for tunnelctl.  Returns how
-- many; one 'login_failures_cleared' audit row either way.
CREATE FUNCTION tunnel_admin_login_failures_clear(p_name text, p_addr text,
                                                  p_actor_id bigint,
                                                  p_actor_addr text)
    RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    v_n  integer;
BEGIN
    DELETE FROM login_failures
     WHERE (p_name IS NULL OR user_name = p_name)
       AND (p_addr IS NULL OR client_addr = p_addr);
    GET DIAGNOSTICS v_n = ROW_COUNT;

    -- user_name even for no such account: it is what was typed
    INSERT INTO tunnel_events (event, actor_id, client_addr, user_id,
                               user_name, detail)
        VALUES ('login_failures_cleared', p_actor_id, p_actor_addr,
                (SELECT id FROM users WHERE name = p_name), p_name,
                concat_ws(' ', v_n || ' failure(s)',
                          'of ' || p_name, 'from ' || p_addr));

    RETURN v_n;
END
$$;
