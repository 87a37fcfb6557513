-- A reservation of a name that has since become a system name (`tunnelctl
-- system-name add NAME` keeps the row, 003) counts for nothing: tunneld
-- already ignores it (ssh says "kept for the system"), and now the quota
-- does too, so a user whose name the operator took may reserve another in
-- its place.  The admin pages show such a row as "kept for the system now"
-- and never offer it as the user's name.

CREATE OR REPLACE FUNCTION tunnel_admin_reserve_name(p_user_id bigint,
                                                     p_name text,
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

    SELECT count(*) INTO v_count FROM reserved_names r
        WHERE r.user_id = p_user_id
          AND NOT EXISTS (SELECT 1 FROM system_names s WHERE s.name = r.name);
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
