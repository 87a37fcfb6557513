-- ngx-tunnel data model: everything that must survive a restart (users,
-- web sessions, invitations, device-flow activation codes, SSH keys,
-- reserved names, the audit log).  What is live (routes, claims) lives in
-- Redis, never here.
--
-- Applied by `tunnelctl migrate` inside one transaction, after it has
-- created its own bookkeeping table schema_migrations: no BEGIN/COMMIT in
-- migration files.  Later changes go into new numbered files; an applied
-- file is never edited.
--
-- Conventions: ids are bigserial; times are timestamptz; secrets are never
-- stored, only their SHA-256 (bytea); addresses are text ("ip" for web
-- clients, "ip:port" for SSH clients) because they are only ever displayed.
-- Readers and writers: tunneld reads ssh_keys/users/reserved_names and
-- writes tunnel_events and ssh_keys.last_used_at; tunnelctl and the admin
-- UI write everything else.


-- Accounts.  A user name is what `ssh -R` users are known by in logs,
-- $tunnel_user and the admin UI.
CREATE TABLE users (
    id             bigserial    PRIMARY KEY,
    name           text         NOT NULL,
    password_hash  text,                       -- argon2id PHC string; NULL:
                                               -- no web login (yet)
    is_admin       boolean      NOT NULL DEFAULT false,
    disabled       boolean      NOT NULL DEFAULT false,
    created_at     timestamptz  NOT NULL DEFAULT now(),
    last_login_at  timestamptz,

    CONSTRAINT users_name_key UNIQUE (name),
    CONSTRAINT users_name_check CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$')
);


-- Web logins of the admin UI.  The cookie carries a random token; only its
-- SHA-256 is kept here, so a database leak does not leak sessions.  A
-- session is valid while now() < expires_at (absolute) and
-- now() < idle_expires_at (pushed forward on use).
CREATE TABLE sessions (
    id               bigserial    PRIMARY KEY,
    user_id          bigint       NOT NULL
                                  REFERENCES users (id) ON DELETE CASCADE,
    token_hash       bytea        NOT NULL,
    csrf_secret      bytea        NOT NULL,
    created_at       timestamptz  NOT NULL DEFAULT now(),
    last_seen_at     timestamptz  NOT NULL DEFAULT now(),
    expires_at       timestamptz  NOT NULL,
    idle_expires_at  timestamptz  NOT NULL,
    client_addr      text,
    user_agent       text,

    CONSTRAINT sessions_token_hash_key UNIQUE (token_hash),
    CONSTRAINT sessions_token_hash_check CHECK (length(token_hash) = 32)
);

CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);


-- Invite-only sign-up: an admin creates an invitation, the link carries a
-- random token (only its SHA-256 is kept), the first use creates the user.
-- Usable while used_at, revoked_at are NULL and now() < expires_at.
CREATE TABLE invitations (
    id          bigserial    PRIMARY KEY,
    token_hash  bytea        NOT NULL,
    created_by  bigint       REFERENCES users (id) ON DELETE SET NULL,
    is_admin    boolean      NOT NULL DEFAULT false,
    note        text         NOT NULL DEFAULT '',
    created_at  timestamptz  NOT NULL DEFAULT now(),
    expires_at  timestamptz  NOT NULL,
    used_at     timestamptz,
    used_by     bigint       REFERENCES users (id) ON DELETE SET NULL,
    revoked_at  timestamptz,

    CONSTRAINT invitations_token_hash_key UNIQUE (token_hash),
    CONSTRAINT invitations_token_hash_check CHECK (length(token_hash) = 32),
    -- used_by may become NULL later (user deleted), used_at stays
    CONSTRAINT invitations_used_check
        CHECK (used_by IS NULL OR used_at IS NOT NULL)
);

CREATE INDEX invitations_expires_at_idx ON invitations (expires_at);


-- Device flow: an unknown key connects, tunneld shows a short user_code,
-- a logged-in user approves it on the web, the key joins that user's
-- ssh_keys.  device_code_hash is the SHA-256 of the secret tunneld holds
-- for the pending connection.  Pending while approved_at, denied_at are
-- NULL and now() < expires_at.
CREATE TABLE activation_codes (
    id                bigserial    PRIMARY KEY,
    user_code         text         NOT NULL,
    device_code_hash  bytea        NOT NULL,
    fingerprint       text         NOT NULL,
    key_type          text         NOT NULL,
    key_base64        text         NOT NULL,
    client_addr       text,
    created_at        timestamptz  NOT NULL DEFAULT now(),
    expires_at        timestamptz  NOT NULL,
    approved_by       bigint       REFERENCES users (id) ON DELETE SET NULL,
    approved_at       timestamptz,
    denied_at         timestamptz,

    CONSTRAINT activation_codes_user_code_key UNIQUE (user_code),
    CONSTRAINT activation_codes_device_code_hash_key
        UNIQUE (device_code_hash),
    CONSTRAINT activation_codes_device_code_hash_check
        CHECK (length(device_code_hash) = 32),
    CONSTRAINT activation_codes_decided_check
        CHECK (approved_at IS NULL OR denied_at IS NULL)
);

CREATE INDEX activation_codes_fingerprint_idx
    ON activation_codes (fingerprint);
CREATE INDEX activation_codes_expires_at_idx ON activation_codes (expires_at);


-- Authorized SSH public keys.  fingerprint is "SHA256:<43 base64 chars>"
-- exactly as `ssh-keygen -lf` prints it: tunneld's auth callback looks keys
-- up by it.  key_type is the blob's own type name ("ssh-ed25519", ...),
-- key_base64 the canonical blob, so the authorized_keys line can be
-- rebuilt.
CREATE TABLE ssh_keys (
    id            bigserial    PRIMARY KEY,
    user_id       bigint       NOT NULL
                               REFERENCES users (id) ON DELETE CASCADE,
    key_type      text         NOT NULL,
    key_base64    text         NOT NULL,
    fingerprint   text         NOT NULL,
    comment       text         NOT NULL DEFAULT '',
    created_at    timestamptz  NOT NULL DEFAULT now(),
    last_used_at  timestamptz,

    CONSTRAINT ssh_keys_fingerprint_key UNIQUE (fingerprint),
    CONSTRAINT ssh_keys_fingerprint_check
        CHECK (fingerprint ~ '^SHA256:[A-Za-z0-9+/]{43}$'),
    CONSTRAINT ssh_keys_key_type_check CHECK (key_type ~ '^[a-z0-9@.-]+$'),
    CONSTRAINT ssh_keys_key_base64_check
        CHECK (key_base64 ~ '^[A-Za-z0-9+/]+=*$')
);

CREATE INDEX ssh_keys_user_id_idx ON ssh_keys (user_id);


-- Names a user owns even while none of their tunnels is up: nobody else
-- may claim them.  Same rule as a tunnel name (one DNS label).
CREATE TABLE reserved_names (
    name        text         PRIMARY KEY,
    user_id     bigint       NOT NULL
                             REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz  NOT NULL DEFAULT now(),

    CONSTRAINT reserved_names_name_check
        CHECK (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$')
);

CREATE INDEX reserved_names_user_id_idx ON reserved_names (user_id);


-- Audit log, append-only.  user_id has no foreign key on purpose: the
-- history of a deleted user stays.  Counters are filled on "close".
CREATE TABLE tunnel_events (
    id           bigserial    PRIMARY KEY,
    at           timestamptz  NOT NULL DEFAULT now(),
    event        text         NOT NULL,
    name         text,
    user_id      bigint,
    fingerprint  text,
    client_addr  text,
    session      text,
    node         text,
    bytes_in     bigint,
    bytes_out    bigint,
    streams      bigint,
    detail       text,

    CONSTRAINT tunnel_events_event_check
        CHECK (event IN ('open', 'close', 'takeover', 'kick', 'refused',
                         'auth'))
);

CREATE INDEX tunnel_events_at_idx ON tunnel_events (at);
CREATE INDEX tunnel_events_name_at_idx ON tunnel_events (name, at);
CREATE INDEX tunnel_events_user_id_at_idx ON tunnel_events (user_id, at);


-- tunneld LISTENs on "tunnel_keys" and reloads its key and reserved-name
-- tables when told.  The payload is the table name (for logs only: one
-- NOTIFY per statement, equal payloads in a transaction are folded into
-- one by PostgreSQL).  Updates notify only when a column tunneld reads
-- changes: tunneld itself updates ssh_keys.last_used_at on every login and
-- the admin UI users.last_login_at, which must not cause reloads.
CREATE FUNCTION tunnel_keys_notify() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tunnel_keys', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER users_notify_change
    AFTER INSERT OR DELETE OR TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION tunnel_keys_notify();
CREATE TRIGGER users_notify_update
    AFTER UPDATE OF id, name, is_admin, disabled ON users
    FOR EACH STATEMENT EXECUTE FUNCTION tunnel_keys_notify();

CREATE TRIGGER ssh_keys_notify_change
    AFTER INSERT OR DELETE OR TRUNCATE ON ssh_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tunnel_keys_notify();
CREATE TRIGGER ssh_keys_notify_update
    AFTER UPDATE OF id, user_id, key_type, key_base64, fingerprint ON ssh_keys
    FOR EACH STATEMENT EXECUTE FUNCTION tunnel_keys_notify();

CREATE TRIGGER reserved_names_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON reserved_names
    FOR EACH STATEMENT EXECUTE FUNCTION tunnel_keys_notify();
