-- The first hour (issue 8): one list of system names for every program,
-- one-time password links for accounts made on the command line, and a
-- first-run rule that cannot lock the web UI.
--
-- * system_names: names nobody may open or reserve (the host names an
--   operator puts beside the tunnel domain).  Until now the list was
--   compiled into tunneld and the admin module, and tunnelctl did not know
--   it; now tunneld, the admin module and tunnelctl all read this table,
--   and an operator changes it with `tunnelctl system-name add|remove`.
--   A trigger refuses a reserved_names row for a system name whoever
--   writes it.  Rows reserved before this migration stay (nothing is
--   deleted); the system list wins wherever a name is checked.
-- * password_tokens: `tunnelctl user add NAME` / `tunnelctl user password
--   NAME` print a one-time link /password/<token>; the web page behind it
--   sets that user's password.  Only the token's SHA-256 is kept.
-- * First run: the web setup is open while no enabled administrator has a
--   password (before: while no user at all existed, so a user made with
--   tunnelctl closed setup without anyone able to sign in).


CREATE TABLE system_names (
    name        text         PRIMARY KEY,
    created_at  timestamptz  NOT NULL DEFAULT now(),

    CONSTRAINT system_names_name_check
        CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
);

-- the list that was TNL_NAME_DEFAULT_RESERVED (common/tnl_name.h)
INSERT INTO system_names (name)
    SELECT unnest(string_to_array(
        'www,admin,api,mail,smtp,imap,pop,ftp,ssh,ns,ns1,ns2,dns,mx,root,'
        'static,assets,cdn,status,dashboard,login,auth,account,tunnel,'
        'tunnels,localhost', ','));

CREATE FUNCTION system_names_guard() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM system_names WHERE name = NEW.name) THEN
        RAISE EXCEPTION 'the name "%" is kept for the system', NEW.name
            USING ERRCODE = 'check_violation',
                  HINT = 'choose another name, or remove it from the '
                         'system list: tunnelctl system-name remove '
                         || NEW.name;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER reserved_names_system_guard
    BEFORE INSERT OR UPDATE OF name ON reserved_names
    FOR EACH ROW EXECUTE FUNCTION system_names_guard();

-- tunneld reloads its tables on NOTIFY tunnel_keys (see 001)
CREATE TRIGGER system_names_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON system_names
    FOR EACH STATEMENT EXECUTE FUNCTION tunnel_keys_notify();


-- Reserving a name now also answers 'system' for a system name (before
-- the trigger would raise), so callers can say which rule refused it.
CREATE OR REPLACE FUNCTION tunnel_admin_reserve_name(p_user_id bigint,
                                                     p_name text,
                                                     p_quota integer)
    RETURNS text
    LANGUAGE plpgsql AS $$
DECLARE
    v_owner  bigint;
    v_count  integer;
BEGIN
    IF EXISTS (SELECT 1 FROM system_names WHERE name = p_name) THEN
        RETURN 'system';
    END IF;

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


-- One-time links that set a user's password.  Usable while used_at is NULL
-- and now() < expires_at; making a new one for a user retires the old ones.
CREATE TABLE password_tokens (
    id          bigserial    PRIMARY KEY,
    token_hash  bytea        NOT NULL,
    user_id     bigint       NOT NULL
                             REFERENCES users (id) ON DELETE CASCADE,
    created_by  bigint       REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz  NOT NULL DEFAULT now(),
    expires_at  timestamptz  NOT NULL,
    used_at     timestamptz,

    CONSTRAINT password_tokens_token_hash_key UNIQUE (token_hash),
    CONSTRAINT password_tokens_token_hash_check
        CHECK (length(token_hash) = 32)
);

CREATE INDEX password_tokens_user_id_idx ON password_tokens (user_id);


-- A new link for p_user_id.  p_token is the random text of the link
-- /password/<token> (at least 128 bits of randomness), p_created_by NULL
-- when made with tunnelctl.  Earlier unused links of that user stop
-- working.  Returns the token id.
CREATE FUNCTION tunnel_admin_password_token_create(p_token text,
                                                   p_user_id bigint,
                                                   p_hours integer,
                                                   p_created_by bigint)
    RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    v_id  bigint;
BEGIN
    UPDATE password_tokens SET expires_at = least(expires_at, now())
        WHERE user_id = p_user_id AND used_at IS NULL;

    INSERT INTO password_tokens (token_hash, user_id, created_by, expires_at)
        VALUES (sha256(convert_to(p_token, 'UTF8')), p_user_id, p_created_by,
                now() + make_interval(hours => p_hours))
        RETURNING id INTO v_id;

    RETURN v_id;
END
$$;


-- What a link is for, without using it: status 'ok' (user id and name
-- set), 'unknown', 'used', 'expired', 'disabled'.
CREATE FUNCTION tunnel_admin_password_token_check(p_token_hash bytea)
    RETURNS TABLE (r_status text, r_user_id bigint, r_user_name text)
    LANGUAGE plpgsql AS $$
DECLARE
    v_tok   password_tokens%ROWTYPE;
    v_user  users%ROWTYPE;
BEGIN
    SELECT * INTO v_tok FROM password_tokens WHERE token_hash = p_token_hash;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint, NULL::text;
        RETURN;
    END IF;

    SELECT * INTO v_user FROM users WHERE id = v_tok.user_id;

    IF v_tok.used_at IS NOT NULL THEN
        RETURN QUERY SELECT 'used'::text, v_user.id, v_user.name;
    ELSIF v_tok.expires_at <= now() THEN
        RETURN QUERY SELECT 'expired'::text, v_user.id, v_user.name;
    ELSIF v_user.disabled THEN
        RETURN QUERY SELECT 'disabled'::text, v_user.id, v_user.name;
    ELSE
        RETURN QUERY SELECT 'ok'::text, v_user.id, v_user.name;
    END IF;
END
$$;


-- Uses a link: sets the password, marks the link used and ends the user's
-- other web sessions (a password set by link is also how a forgotten one
-- is replaced).  Same statuses as the check; the row lock makes a link
-- single-use under concurrent posts.
CREATE FUNCTION tunnel_admin_password_set(p_token_hash bytea,
                                          p_password_hash text)
    RETURNS TABLE (r_status text, r_user_id bigint, r_user_name text)
    LANGUAGE plpgsql AS $$
DECLARE
    v_tok   password_tokens%ROWTYPE;
    v_user  users%ROWTYPE;
BEGIN
    SELECT * INTO v_tok FROM password_tokens
        WHERE token_hash = p_token_hash FOR UPDATE;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'unknown'::text, NULL::bigint, NULL::text;
        RETURN;
    END IF;

    SELECT * INTO v_user FROM users WHERE id = v_tok.user_id FOR UPDATE;

    IF v_tok.used_at IS NOT NULL THEN
        RETURN QUERY SELECT 'used'::text, v_user.id, v_user.name;
        RETURN;
    ELSIF v_tok.expires_at <= now() THEN
        RETURN QUERY SELECT 'expired'::text, v_user.id, v_user.name;
        RETURN;
    ELSIF v_user.disabled THEN
        RETURN QUERY SELECT 'disabled'::text, v_user.id, v_user.name;
        RETURN;
    END IF;

    UPDATE users SET password_hash = p_password_hash WHERE id = v_user.id;
    UPDATE password_tokens SET used_at = now() WHERE id = v_tok.id;
    DELETE FROM sessions WHERE user_id = v_user.id;

    RETURN QUERY SELECT 'ok'::text, v_user.id, v_user.name;
END
$$;


-- Is the web setup open?  True while no enabled administrator can sign in
-- (has a password).  Read by the admin module on every request, by
-- `make run` to print the right next step, and by tunnelctl.
CREATE FUNCTION tunnel_admin_needs_setup()
    RETURNS boolean
    LANGUAGE sql STABLE AS $$
    SELECT NOT EXISTS (SELECT 1 FROM users
                           WHERE is_admin AND NOT disabled
                             AND password_hash IS NOT NULL);
$$;


-- The first administrator, while tunnel_admin_needs_setup().  Status:
-- 'ok' (user id set), 'done' (an administrator who can sign in exists
-- already: a racing setup won), 'name_taken' (a user of that name has a
-- password: setup must not take over an account someone can use).  A user
-- of that name without a password (made with `tunnelctl user add`) becomes
-- the administrator with this password: that is the README's order.
DROP FUNCTION tunnel_admin_setup(text, text);

CREATE FUNCTION tunnel_admin_setup(p_name text, p_password_hash text)
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
        UPDATE users SET password_hash = p_password_hash, is_admin = true,
                         disabled = false
            WHERE id = v_user.id;
        RETURN QUERY SELECT 'ok'::text, v_user.id;
        RETURN;
    END IF;

    INSERT INTO users (name, password_hash, is_admin)
        VALUES (p_name, p_password_hash, true)
        RETURNING id INTO v_id;

    RETURN QUERY SELECT 'ok'::text, v_id;
END
$$;
