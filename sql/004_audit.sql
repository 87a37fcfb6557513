-- The audit log (issue 9): tunnel_events, which tunneld already writes
-- (open, close, takeover, kick, refused, auth), becomes the one place that
-- also records what people do on the web and with tunnelctl, with who did
-- it, from which address and to whom.  /admin/audit reads it, newest first.
--
-- Columns added:
-- * actor_id, actor_name: who did it.  The name is kept as text so the
--   history of a deleted user stays readable; a writer gives actor_id and
--   the trigger below fills actor_name from users at write time.
--   tunnelctl has no user: it sets the session setting tunnel.actor
--   ("tunnelctl (OS user)") once per connection, and rows without an actor
--   get that (or "database user NAME" for SQL typed by hand).
-- * user_name: the subject user's name at write time (user_id already
--   existed; tunneld gives only the id).
-- client_addr is the address the action came from: the SSH client's
-- "ip:port" for tunnel rows, the browser's "ip" for web rows, the
-- database client's address ("local" on a Unix socket) for tunnelctl.
--
-- Every state-changing web or tunnelctl action leaves exactly one row:
-- the racy tunnel_admin_* functions write it themselves in their own
-- transaction (they know whether the action happened and, for a delete,
-- the name before it is gone), plain statements write it in the same
-- statement (a data-modifying WITH).  A cascade (a user deleted with their
-- keys and names) is one row, the user's.
--
-- Close reasons in detail (tunneld): "client quit", "kicked by WHO",
-- "taken over", "user disabled or key removed", "server shutting down",
-- "connection lost", and "node lost": a tunneld (or one worker) killed
-- without closing writes nothing, so at its next start it closes its own
-- open rows with tunnel_events_node_lost() below.


ALTER TABLE tunnel_events
    ADD COLUMN actor_id    bigint,
    ADD COLUMN actor_name  text,
    ADD COLUMN user_name   text;

UPDATE tunnel_events e SET user_name = u.name
    FROM users u WHERE u.id = e.user_id;

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
        'system_name_added', 'system_name_removed'));

-- newest first is "ORDER BY id DESC" (the primary key); each filter has an
-- index ending in id so a page of 100 is an index range scan
CREATE INDEX tunnel_events_user_name_id_idx
    ON tunnel_events (user_name, id);
CREATE INDEX tunnel_events_actor_name_id_idx
    ON tunnel_events (actor_name, id);
CREATE INDEX tunnel_events_name_id_idx ON tunnel_events (name, id);
CREATE INDEX tunnel_events_event_id_idx ON tunnel_events (event, id);
-- "does this open have a later close": node-lost sweep, tunnels up
CREATE INDEX tunnel_events_session_name_idx
    ON tunnel_events (session, name, id);


-- Fills the names that writers leave to the database: the subject's and
-- the actor's name from their ids, and for tunneld's rows the actor from
-- the event itself (the user for open/takeover/auth and a client quit,
-- WHO for "kicked by WHO"; nobody for what the system did).
CREATE FUNCTION tunnel_events_fill() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.user_name IS NULL AND NEW.user_id IS NOT NULL THEN
        SELECT name INTO NEW.user_name FROM users WHERE id = NEW.user_id;
    END IF;

    IF NEW.actor_name IS NOT NULL THEN
        RETURN NEW;
    END IF;

    IF NEW.actor_id IS NOT NULL THEN
        SELECT name INTO NEW.actor_name FROM users WHERE id = NEW.actor_id;

    ELSIF NEW.event IN ('kick', 'close') AND NEW.detail LIKE 'kicked by %'
    THEN
        NEW.actor_name := substr(NEW.detail, 11);

    ELSIF NEW.event IN ('open', 'takeover', 'auth')
          OR (NEW.event = 'close' AND NEW.detail = 'client quit')
    THEN
        NEW.actor_id := NEW.user_id;
        NEW.actor_name := NEW.user_name;

    ELSIF NEW.event NOT IN ('close', 'kick', 'refused', 'login_failed') THEN
        -- web rows always carry an actor id: this is tunnelctl or psql
        NEW.actor_name := coalesce(
            nullif(current_setting('tunnel.actor', true), ''),
            'database user ' || session_user);
        NEW.client_addr := coalesce(NEW.client_addr,
                                    host(inet_client_addr()), 'local');
    END IF;

    RETURN NEW;
END
$$;

CREATE TRIGGER tunnel_events_fill
    BEFORE INSERT ON tunnel_events
    FOR EACH ROW EXECUTE FUNCTION tunnel_events_fill();


-- One audit row from the functions below (names filled by the trigger).
CREATE FUNCTION tunnel_audit(p_event text, p_actor_id bigint, p_addr text,
                             p_user_id bigint, p_name text, p_detail text)
    RETURNS void
    LANGUAGE sql AS $$
    INSERT INTO tunnel_events (event, actor_id, client_addr, user_id, name,
                               detail)
        VALUES (p_event, p_actor_id, p_addr, p_user_id, p_name, p_detail);
$$;


-- A tunneld (one worker, or the whole node) died without writing its
-- close rows: close every open of that node whose session id starts with
-- p_session_prefix ("node/" for the node, "node/PID/" for one worker),
-- logged before p_before (when the new process started) and not closed
-- since.  Returns how many.  tunneld runs it once per start (sshd/db.c).
CREATE FUNCTION tunnel_events_node_lost(p_node text, p_session_prefix text,
                                        p_before timestamptz)
    RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    v_n  integer;
BEGIN
    INSERT INTO tunnel_events (event, name, user_id, user_name, fingerprint,
                               client_addr, session, node, detail)
        SELECT 'close', o.name, o.user_id, o.user_name, o.fingerprint,
               o.client_addr, o.session, o.node, 'node lost'
          FROM tunnel_events o
         WHERE o.event IN ('open', 'takeover')
           AND o.node = p_node
           AND left(o.session, length(p_session_prefix)) = p_session_prefix
           AND o.at < p_before
           AND NOT EXISTS (SELECT 1 FROM tunnel_events c
                            WHERE c.session = o.session AND c.name = o.name
                              AND c.event = 'close' AND c.id > o.id)
         ORDER BY o.id;

    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;


-- The racy functions of 002 and 003 now write their audit row, and take
-- the actor's address as a last argument (DEFAULT NULL: a caller that
-- does not know it still leaves its row).  Bodies as before otherwise.

DROP FUNCTION tunnel_admin_setup(text, text);

CREATE FUNCTION tunnel_admin_setup(p_name text, p_password_hash text,
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
        UPDATE users SET password_hash = p_password_hash, is_admin = true,
                         disabled = false
            WHERE id = v_user.id;
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


DROP FUNCTION tunnel_admin_invite_create(text, boolean, integer, text,
                                         bigint);

CREATE FUNCTION tunnel_admin_invite_create(p_token text, p_is_admin boolean,
                                           p_hours integer, p_note text,
                                           p_created_by bigint,
                                           p_addr text DEFAULT NULL)
    RETURNS bigint
    LANGUAGE plpgsql AS $$
DECLARE
    v_id  bigint;
BEGIN
    INSERT INTO invitations (token_hash, created_by, is_admin, note,
                             expires_at)
        VALUES (sha256(convert_to(p_token, 'UTF8')), p_created_by,
                p_is_admin, coalesce(p_note, ''),
                now() + make_interval(hours => p_hours))
        RETURNING id INTO v_id;

    PERFORM tunnel_audit('invite_created', p_created_by, p_addr, NULL, NULL,
        format('invitation %s%s, valid %s h%s', v_id,
               CASE WHEN p_is_admin THEN ' (administrator)' ELSE '' END,
               p_hours,
               CASE WHEN coalesce(p_note, '') = '' THEN ''
                    ELSE ', note: ' || p_note END));

    RETURN v_id;
END
$$;


DROP FUNCTION tunnel_admin_join(bytea, text, text);

CREATE FUNCTION tunnel_admin_join(p_token_hash bytea, p_name text,
                                  p_password_hash text,
                                  p_addr text DEFAULT NULL)
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

    PERFORM tunnel_audit('join', v_id, p_addr, v_id, NULL,
        format('invitation %s%s', v_inv.id,
               CASE WHEN v_inv.is_admin THEN ' (administrator)'
                    ELSE '' END));

    RETURN QUERY SELECT 'ok'::text, v_id;
END
$$;


DROP FUNCTION tunnel_admin_reserve_name(bigint, text, integer);

CREATE FUNCTION tunnel_admin_reserve_name(p_user_id bigint, p_name text,
                                          p_quota integer,
                                          p_addr text DEFAULT NULL)
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

    PERFORM tunnel_audit('name_reserved', p_user_id, p_addr, p_user_id,
                         p_name, NULL);

    RETURN 'ok';
END
$$;


DROP FUNCTION tunnel_admin_user_action(bigint, bigint, text);

CREATE FUNCTION tunnel_admin_user_action(p_actor_id bigint,
                                         p_user_id bigint, p_action text,
                                         p_addr text DEFAULT NULL)
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

    -- before the change: a deleted user's name is still there to copy
    PERFORM tunnel_audit(CASE p_action
                             WHEN 'disable' THEN 'user_disabled'
                             WHEN 'enable' THEN 'user_enabled'
                             WHEN 'delete' THEN 'user_removed'
                             WHEN 'promote' THEN 'user_promoted'
                             ELSE 'user_demoted' END,
                         p_actor_id, p_addr, p_user_id, NULL, NULL);

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


DROP FUNCTION tunnel_admin_password_token_create(text, bigint, integer,
                                                 bigint);

CREATE FUNCTION tunnel_admin_password_token_create(p_token text,
                                                   p_user_id bigint,
                                                   p_hours integer,
                                                   p_created_by bigint,
                                                   p_addr text DEFAULT NULL)
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

    PERFORM tunnel_audit('password_link', p_created_by, p_addr, p_user_id,
                         NULL, format('valid %s h', p_hours));

    RETURN v_id;
END
$$;


DROP FUNCTION tunnel_admin_password_set(bytea, text);

CREATE FUNCTION tunnel_admin_password_set(p_token_hash bytea,
                                          p_password_hash text,
                                          p_addr text DEFAULT NULL)
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

    PERFORM tunnel_audit('password_set', v_user.id, p_addr, v_user.id, NULL,
                         'by one-time link');

    RETURN QUERY SELECT 'ok'::text, v_user.id, v_user.name;
END
$$;
