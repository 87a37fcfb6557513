-- After 004 (audit) and 005 (device flow) met, and a newcomer's review:
--
-- * Device-flow decisions leave audit rows like every other action:
--   'key_activated' (the approver, from where, which key) and
--   'activation_denied'.  tunnel_activation_decide() writes them in its
--   own transaction, so the web and tunnelctl cannot forget them.
-- * Setup over an account made with `tunnelctl user add`: its one-time
--   password links stop working (before, an old link could set a new
--   password for the new administrator and sign them out), and a disabled
--   account is not re-enabled through setup (status 'disabled').


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
        'key_activated', 'activation_denied'));


CREATE OR REPLACE FUNCTION tunnel_activation_decide(p_code_hash bytea,
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
        PERFORM tunnel_audit('activation_denied', p_user_id, p_addr, NULL,
                             NULL, v_code.key_type || ' '
                                   || v_code.fingerprint || ' from '
                                   || coalesce(v_code.client_addr, '?'));
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
    PERFORM tunnel_audit('key_activated', p_user_id, p_addr, p_user_id,
                         NULL, v_code.key_type || ' ' || v_code.fingerprint
                               || ' from '
                               || coalesce(v_code.client_addr, '?'));
    PERFORM pg_notify('tunnel_activation', v_code.id || ' approved');

    RETURN QUERY SELECT 'approved'::text, v_code.id, v_code.fingerprint;
END
$$;


CREATE OR REPLACE FUNCTION tunnel_admin_setup(p_name text,
                                              p_password_hash text,
                                              p_addr text DEFAULT NULL)
    RETURNS TABLE (r_status text, r_user_id bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    v_user  users%ROWTYPE;
    v_id    bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tunnel_admin_setup'));

    IF NOT tunnel_admin_needs_setup() THEN
        RETURN QUERY SELECT 'done'::text, NULL::bigint;
        RETURN;
    END IF;

    SELECT * INTO v_user FROM users WHERE name = p_name FOR UPDATE;
    IF FOUND THEN
        IF v_user.password_hash IS NOT NULL THEN
            RETURN QUERY SELECT 'name_taken'::text, NULL::bigint;
            RETURN;
        END IF;
        IF v_user.disabled THEN
            RETURN QUERY SELECT 'disabled'::text, NULL::bigint;
            RETURN;
        END IF;
        UPDATE users SET password_hash = p_password_hash, is_admin = true
            WHERE id = v_user.id;
        -- links printed before for this account must not outlive setup
        UPDATE password_tokens SET expires_at = least(expires_at, now())
            WHERE user_id = v_user.id AND used_at IS NULL;
        PERFORM tunnel_audit('setup', v_user.id, p_addr, v_user.id, NULL,
                             'existing account made administrator');
        RETURN QUERY SELECT 'ok'::text, v_user.id;
        RETURN;
    END IF;

    INSERT INTO users (name, password_hash, is_admin)
        VALUES (p_name, p_password_hash, true)
        RETURNING id INTO v_id;

    PERFORM tunnel_audit('setup', v_id, p_addr, v_id, NULL,
                         'first administrator');

    RETURN QUERY SELECT 'ok'::text, v_id;
END
$$;
