-- 009: the cap on pending activation codes per address counts an IPv6
-- client by its /64, not by its full address.  One host usually holds a
-- whole /64 (often a /56 or /48), so counting full addresses let one
-- host open --activation-max codes from as many addresses of its own and
-- leave every other new key "full" for the codes' lifetime (found by the
-- attacker review of issue 14).  IPv4, and IPv4 carried in IPv6
-- (::ffff:a.b.c.d), is counted per address as before.  tunneld's limit on
-- unauthenticated connections (sshd/startups.c) buckets the same way.

-- The bucket an "ip:port" or "[ip]:port" address is counted in: the IPv6
-- /64 ("2001:db8:1:2::/64"), or the IPv4 address.  Text that is no
-- address is its own bucket.
CREATE FUNCTION tunnel_addr_bucket(p_addr text)
    RETURNS text
    LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v_ip    text := tunnel_addr_ip(p_addr);
    v_inet  inet;
BEGIN
    BEGIN
        v_inet := v_ip::inet;
    EXCEPTION WHEN others THEN
        RETURN v_ip;
    END;

    IF family(v_inet) = 6 AND NOT v_inet <<= '::ffff:0:0/96'::inet THEN
        RETURN network(set_masklen(v_inet, 64))::text;
    END IF;

    RETURN host(v_inet);
END
$$;


-- tunnel_activation_create() of 005, with the per-address cap counted by
-- tunnel_addr_bucket().  Otherwise unchanged.
CREATE OR REPLACE FUNCTION tunnel_activation_create(p_code_hash bytea,
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
              AND tunnel_addr_bucket(client_addr)
                  = tunnel_addr_bucket(p_client_addr))
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
