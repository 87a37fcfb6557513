-- ngx-tunnel web control plane (admin/, ngx_http_tunnel_admin_module): what
-- it needs beyond 001.  Failed sign-ins are counted here for the rate limit
-- (every nginx worker and node sees the same counts), and each write that
-- must stay correct when two requests race is one function, so that the
-- non-blocking client sends one statement and PostgreSQL does the locking:
-- first-run setup, joining with an invitation, reserving a name within the
-- quota, and user actions that must never leave zero administrators.
--
-- Tokens: the browser or command line holds a random token (base64url
-- text); the tables keep sha256 of that text's bytes.  tunnelctl creates
-- invitations and changes users through the same functions.


-- Failed sign-ins, kept one day.  user_name is what was typed (maybe no
-- such user), cut to 64 characters.
CREATE TABLE login_failures (
    id           bigserial    PRIMARY KEY,
    at           timestamptz  NOT NULL DEFAULT now(),
    client_addr  text         NOT NULL,
    user_name    text         NOT NULL
);

CREATE INDEX login_failures_client_addr_at_idx
    ON login_failures (client_addr, at);
CREATE INDEX login_failures_user_name_at_idx
    ON login_failures (user_name, at);


-- The first administrator, while no user exists.  Two concurrent calls
-- create exactly one: the advisory lock serialises them and the second one
-- then sees the first one's user.  Returns the new id, or NULL when the
-- installation already has a user.
CREATE FUNCTION tunnel_admin_setup(p_name text, p_password_hash text)
    RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    v_id  bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tunnel_admin_setup'));

    IF EXISTS (SELECT 1 FROM users) THEN
        RETURN NULL;
    END IF;

    INSERT INTO users (name, password_hash, is_admin)
        VALUES (p_name, p_password_hash, true)
        RETURNING id INTO v_id;

    RETURN v_id;
END
$$;


-- A new invitation.  p_token is the random text of the link /join/<token>
-- (at least 128 bits of randomness), p_created_by NULL when made by an
-- operator with tunnelctl.  Returns the invitation id.
CREATE FUNCTION tunnel_admin_invite_create(p_token text, p_is_admin boolean,
                                           p_hours integer, p_note text,
                                           p_created_by bigint)
    RETURNS bigint
    LANGUAGE sql AS $$
    INSERT INTO invitations (token_hash, created_by, is_admin, note,
                             expires_at)
        VALUES (sha256(convert_to(p_token, 'UTF8')), p_created_by,
                p_is_admin, coalesce(p_note, ''),
                now() + make_interval(hours => p_hours))
        RETURNING id;
$$;


-- Uses an invitation: creates the user and marks the invitation used, or
-- says why not.  Status: 'ok' (user id set), 'unknown', 'revoked', 'used',
-- 'expired', 'name_taken'.  The row lock makes a token single-use even
-- under concurrent joins.
CREATE FUNCTION tunnel_admin_join(p_token_hash bytea, p_name text,
                                  p_password_hash text)
    RETURNS TABLE (r_status text, r_user_id bigint)
    LANGUAGE plpgsql AS $$
DECLARE
    v_inv  invitations%ROWTYPE;
    v_id   bigint;
BEGIN
    SELECT * INTO v_inv FROM invitations
        WHERE token_hash = p_token_hash FOR UPDATE;

    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint;
        RETURN;
    ELSIF v_inv.revoked_at IS NOT NULL THEN
        RETURN QUERY SELECT 'revoked'::text, NULL::bigint;
        RETURN;
    ELSIF v_inv.used_at IS NOT NULL THEN
        RETURN QUERY SELECT 'used'::text, NULL::bigint;
        RETURN;
    ELSIF v_inv.expires_at <= now() THEN
        RETURN QUERY SELECT 'expired'::text, NULL::bigint;
        RETURN;
    END IF;

    BEGIN
        INSERT INTO users (name, password_hash, is_admin)
            VALUES (p_name, p_password_hash, v_inv.is_admin)
            RETURNING id INTO v_id;
    EXCEPTION WHEN unique_violation THEN
        RETURN QUERY SELECT 'name_taken'::text, NULL::bigint;
        RETURN;
    END;

    UPDATE invitations SET used_at = now(), used_by = v_id
        WHERE id = v_inv.id;

    RETURN QUERY SELECT 'ok'::text, v_id;
END
$$;


-- Reserves p_name for p_user_id within p_quota names.  Status: 'ok',
-- 'mine' (already theirs), 'taken' (someone else's), 'quota'.  Locking the
-- user's row serialises one user's concurrent reservations, so the quota
-- holds.
CREATE FUNCTION tunnel_admin_reserve_name(p_user_id bigint, p_name text,
                                          p_quota integer)
    RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    v_owner  bigint;
    v_count  integer;
BEGIN
    PERFORM 1 FROM users WHERE id = p_user_id FOR UPDATE;

    SELECT user_id INTO v_owner FROM reserved_names WHERE name = p_name;
    IF FOUND THEN
        RETURN CASE WHEN v_owner = p_user_id THEN 'mine' ELSE 'taken' END;
    END IF;

    SELECT count(*) INTO v_count FROM reserved_names
        WHERE user_id = p_user_id;
    IF v_count >= p_quota THEN
        RETURN 'quota';
    END IF;

    INSERT INTO reserved_names (name, user_id) VALUES (p_name, p_user_id)
        ON CONFLICT (name) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'taken';
    END IF;

    RETURN 'ok';
END
$$;


-- What an administrator (p_actor_id; NULL for an operator using tunnelctl)
-- does to a user: 'disable' (also ends their web sessions; tunneld drops
-- their keys and closes their tunnels on the NOTIFY), 'enable', 'delete',
-- 'promote', 'demote'.  Never leaves the installation without an enabled
-- administrator.  Status: 'ok', 'forbidden' (actor not an enabled admin),
-- 'unknown' (no such user), 'last_admin', 'bad_action'.
CREATE FUNCTION tunnel_admin_user_action(p_actor_id bigint,
                                         p_user_id bigint, p_action text)
    RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    v_user    users%ROWTYPE;
    v_others  integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('tunnel_admin_admins'));

    IF p_actor_id IS NOT NULL AND NOT EXISTS (
           SELECT 1 FROM users
               WHERE id = p_actor_id AND is_admin AND NOT disabled)
    THEN
        RETURN 'forbidden';
    END IF;

    SELECT * INTO v_user FROM users WHERE id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN 'unknown';
    END IF;

    IF p_action NOT IN ('disable', 'enable', 'delete', 'promote', 'demote')
    THEN
        RETURN 'bad_action';
    END IF;

    IF p_action IN ('disable', 'delete', 'demote')
       AND v_user.is_admin AND NOT v_user.disabled
    THEN
        SELECT count(*) INTO v_others FROM users
            WHERE is_admin AND NOT disabled AND id <> p_user_id;
        IF v_others = 0 THEN
            RETURN 'last_admin';
        END IF;
    END IF;

    IF p_action = 'disable' THEN
        UPDATE users SET disabled = true WHERE id = p_user_id;
        DELETE FROM sessions WHERE user_id = p_user_id;
    ELSIF p_action = 'enable' THEN
        UPDATE users SET disabled = false WHERE id = p_user_id;
    ELSIF p_action = 'delete' THEN
        DELETE FROM users WHERE id = p_user_id;
    ELSIF p_action = 'promote' THEN
        UPDATE users SET is_admin = true WHERE id = p_user_id;
    ELSE
        UPDATE users SET is_admin = false WHERE id = p_user_id;
    END IF;

    RETURN 'ok';
END
$$;
