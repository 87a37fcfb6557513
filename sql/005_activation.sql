-- Device flow (issue 10, after RFC 8628): an unknown SSH key whose
-- signature tunneld has verified gets a short user code; a signed-in user
-- approves it on /activate (or an operator with tunnelctl), the key joins
-- that user's keys and the waiting ssh session goes on.
--
-- Who does what:
-- * tunneld: tunnel_activation_create() when it issues a code (caps are
--   checked here, atomically), tunnel_activation_cancel() when the client
--   leaves or the code expires, LISTEN tunnel_activation for decisions.
--   An approval also inserts the key, so tunnel_keys fires too and tunneld
--   finds the key in its reloaded table: that is what lets the session in.
-- * admin module and tunnelctl: tunnel_activation_lookup() to show what is
--   being approved, tunnel_activation_decide() to approve or deny,
--   tunnel_activation_note_failure() / _failures() for the wrong-code
--   limit.
--
-- The user code is never stored: only the SHA-256 of its 8 letters
-- (upper case, no dash).  It is short (20^8, about 2^34.6), which is why
-- wrong entries are limited and codes live minutes, not hours.


ALTER TABLE activation_codes DROP CONSTRAINT activation_codes_user_code_key;
ALTER TABLE activation_codes DROP COLUMN user_code;

ALTER TABLE activation_codes
    ADD COLUMN user_code_hash  bytea,
    ADD COLUMN node            text,
    ADD COLUMN session         text,
    ADD COLUMN requested_name  text,
    ADD COLUMN approved_addr   text,
    ADD COLUMN denied_by       bigint REFERENCES users (id) ON DELETE SET NULL,
    ADD COLUMN denied_addr     text;

-- rows made before this migration had no hash: they cannot be entered
DELETE FROM activation_codes WHERE user_code_hash IS NULL;

ALTER TABLE activation_codes
    ALTER COLUMN user_code_hash SET NOT NULL,
    ADD CONSTRAINT activation_codes_user_code_hash_key
        UNIQUE (user_code_hash),
    ADD CONSTRAINT activation_codes_user_code_hash_check
        CHECK (length(user_code_hash) = 32);

CREATE INDEX activation_codes_client_addr_idx
    ON activation_codes (client_addr);


-- The address part of "ip:port" or "[v6]:port".
CREATE FUNCTION tunnel_addr_ip(p_addr text)
    RETURNS text
    LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(substring(p_addr from '^\[([^]]*)\]'),
                    split_part(p_addr, ':', 1));
$$;


-- Wrong code entries, for the limit (per web session and per address).
CREATE TABLE activation_failures (
    id           bigserial    PRIMARY KEY,
    at           timestamptz  NOT NULL DEFAULT now(),
    client_addr  text         NOT NULL,
    session_id   bigint       -- sessions.id of the web login, if any
);

CREATE INDEX activation_failures_client_addr_at_idx
    ON activation_failures (client_addr, at);
CREATE INDEX activation_failures_session_id_at_idx
    ON activation_failures (session_id, at);


-- A new code for a verified, unknown key.  p_client_ip is the address
-- alone (the cap per address), p_client_addr "ip:port" for display.
-- Status: 'ok' (r_id set), 'registered' (the key belongs to someone
-- already: tunneld's table was stale), 'addr_limit' (p_max_per_addr codes
-- pending from that address), 'full' (p_max_total pending in all), 'taken'
-- (the code's hash exists: tunneld draws another code and retries).
-- Expired rows are removed on the way.
CREATE FUNCTION tunnel_activation_create(p_code_hash bytea,
                                         p_device_hash bytea,
                                         p_fingerprint text,
                                         p_key_type text,
                                         p_key_base64 text,
                                         p_client_addr text,
                                         p_node text,
                                         p_session text,
                                         p_seconds integer,
                                         p_max_per_addr integer,
                                         p_max_total integer)
    RETURNS TABLE (r_status text, r_id bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    v_id  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tunnel_activation'));

    DELETE FROM activation_codes
        WHERE expires_at < now() - interval '1 hour';

    IF EXISTS (SELECT 1 FROM ssh_keys WHERE fingerprint = p_fingerprint)
    THEN
        RETURN QUERY SELECT 'registered'::text, NULL::bigint;
        RETURN;
    END IF;

    IF (SELECT count(*) FROM activation_codes
            WHERE approved_at IS NULL AND denied_at IS NULL
              AND expires_at > now()
              AND tunnel_addr_ip(client_addr)
                  = tunnel_addr_ip(p_client_addr))
       >= p_max_per_addr
    THEN
        RETURN QUERY SELECT 'addr_limit'::text, NULL::bigint;
        RETURN;
    END IF;

    IF (SELECT count(*) FROM activation_codes
            WHERE approved_at IS NULL AND denied_at IS NULL
              AND expires_at > now())
       >= p_max_total
    THEN
        RETURN QUERY SELECT 'full'::text, NULL::bigint;
        RETURN;
    END IF;

    BEGIN
        INSERT INTO activation_codes (user_code_hash, device_code_hash,
                                      fingerprint, key_type, key_base64,
                                      client_addr, node, session, expires_at)
            VALUES (p_code_hash, p_device_hash, p_fingerprint, p_key_type,
                    p_key_base64, p_client_addr, p_node, p_session,
                    now() + make_interval(secs => p_seconds))
            RETURNING id INTO v_id;
    EXCEPTION WHEN unique_violation THEN
        RETURN QUERY SELECT 'taken'::text, NULL::bigint;
        RETURN;
    END;

    RETURN QUERY SELECT 'ok'::text, v_id;
END
$$;


-- The client left, or its code expired: nothing stays behind.  A decided
-- row is kept (it is history; the audit log has it too).
CREATE FUNCTION tunnel_activation_cancel(p_id bigint)
    RETURNS void
    LANGUAGE sql AS $$
    DELETE FROM activation_codes
        WHERE id = p_id AND approved_at IS NULL AND denied_at IS NULL;
$$;


-- What a code is for, without deciding: status 'pending', 'approved',
-- 'denied', 'expired' or 'unknown', with the row's details (NULL for
-- 'unknown').
CREATE FUNCTION tunnel_activation_lookup(p_code_hash bytea)
    RETURNS TABLE (r_status text, r_id bigint, r_fingerprint text,
                   r_key_type text, r_client_addr text,
                   r_requested_name text, r_created_at timestamptz,
                   r_expires_at timestamptz)
    LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN approved_at IS NOT NULL THEN 'approved'
                WHEN denied_at IS NOT NULL THEN 'denied'
                WHEN expires_at <= now() THEN 'expired'
                ELSE 'pending' END,
           id, fingerprint, key_type, client_addr, requested_name,
           created_at, expires_at
      FROM activation_codes WHERE user_code_hash = p_code_hash
    UNION ALL
    SELECT 'unknown', NULL, NULL, NULL, NULL, NULL, NULL, NULL
     WHERE NOT EXISTS (SELECT 1 FROM activation_codes
                           WHERE user_code_hash = p_code_hash);
$$;


-- Approve (the key joins p_user_id's keys with a comment saying when and
-- from where) or deny a pending code.  p_user_id NULL: an operator with
-- tunnelctl denying.  Status: 'approved', 'denied', 'unknown', 'expired',
-- 'already' (decided before), 'key_taken' (the key was registered to
-- someone meanwhile), 'disabled' (the approving user is disabled).  Tells
-- tunneld: NOTIFY tunnel_activation '<id> approved|denied'.
CREATE FUNCTION tunnel_activation_decide(p_code_hash bytea,
                                         p_user_id bigint,
                                         p_approve boolean,
                                         p_addr text)
    RETURNS TABLE (r_status text, r_id bigint, r_fingerprint text)
    LANGUAGE plpgsql AS $$
DECLARE
    v_code  activation_codes%ROWTYPE;
BEGIN
    SELECT * INTO v_code FROM activation_codes
        WHERE user_code_hash = p_code_hash FOR UPDATE;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint, NULL::text;
        RETURN;
    ELSIF v_code.approved_at IS NOT NULL OR v_code.denied_at IS NOT NULL
    THEN
        RETURN QUERY SELECT 'already'::text, v_code.id, v_code.fingerprint;
        RETURN;
    ELSIF v_code.expires_at <= now() THEN
        RETURN QUERY SELECT 'expired'::text, v_code.id, v_code.fingerprint;
        RETURN;
    END IF;

    IF p_user_id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM users WHERE id = p_user_id AND NOT disabled)
    THEN
        RETURN QUERY SELECT 'disabled'::text, v_code.id, v_code.fingerprint;
        RETURN;
    END IF;

    IF NOT p_approve THEN
        UPDATE activation_codes
            SET denied_at = now(), denied_by = p_user_id,
                denied_addr = p_addr
            WHERE id = v_code.id;
        PERFORM pg_notify('tunnel_activation', v_code.id || ' denied');
        RETURN QUERY SELECT 'denied'::text, v_code.id, v_code.fingerprint;
        RETURN;
    END IF;

    IF p_user_id IS NULL THEN
        RETURN QUERY SELECT 'unknown'::text, v_code.id, v_code.fingerprint;
        RETURN;
    END IF;

    BEGIN
        INSERT INTO ssh_keys (user_id, key_type, key_base64, fingerprint,
                              comment)
            VALUES (p_user_id, v_code.key_type, v_code.key_base64,
                    v_code.fingerprint,
                    'activated ' || to_char(now() AT TIME ZONE 'UTC',
                                            'YYYY-MM-DD')
                    || ' from '
                    || coalesce(tunnel_addr_ip(v_code.client_addr), '?'));
    EXCEPTION WHEN unique_violation THEN
        RETURN QUERY SELECT 'key_taken'::text, v_code.id, v_code.fingerprint;
        RETURN;
    END;

    UPDATE activation_codes
        SET approved_at = now(), approved_by = p_user_id,
            approved_addr = p_addr
        WHERE id = v_code.id;
    PERFORM pg_notify('tunnel_activation', v_code.id || ' approved');

    RETURN QUERY SELECT 'approved'::text, v_code.id, v_code.fingerprint;
END
$$;


-- The wrong-code limit: a failure is noted, and the count of the last
-- p_seconds per address and per web session decides.
CREATE FUNCTION tunnel_activation_note_failure(p_addr text,
                                               p_session_id bigint)
    RETURNS void
    LANGUAGE sql AS $$
    DELETE FROM activation_failures WHERE at < now() - interval '1 day';
    INSERT INTO activation_failures (client_addr, session_id)
        VALUES (p_addr, p_session_id);
$$;

CREATE FUNCTION tunnel_activation_failures(p_addr text, p_session_id bigint,
                                           p_seconds integer)
    RETURNS TABLE (r_by_addr bigint, r_by_session bigint,
                   r_retry_after integer)
    LANGUAGE sql STABLE AS $$
    SELECT (SELECT count(*) FROM activation_failures
                WHERE client_addr = p_addr
                  AND at > now() - make_interval(secs => p_seconds)),
           (SELECT count(*) FROM activation_failures
                WHERE session_id = p_session_id
                  AND at > now() - make_interval(secs => p_seconds)),
           coalesce((SELECT ceil(extract(epoch FROM
                        min(at) + make_interval(secs => p_seconds) - now()))
                         ::integer
                     FROM activation_failures
                     WHERE (client_addr = p_addr OR session_id = p_session_id)
                       AND at > now() - make_interval(secs => p_seconds)),
                    0);
$$;
