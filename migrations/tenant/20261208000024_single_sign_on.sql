-- Single sign-on (OpenID Connect) for the staff, optional per municipality: the municipality's
-- identity provider, the provider's subject linked to a member, and the sign-ins in flight.

-- At most one provider (the row's key is the constant true). The client secret is sealed by
-- the app under the deployment's master key; the issuer is checked by discovery when saved.
create table sso_provider (
    id boolean primary key default true check (id),
    issuer text not null check (length(issuer) <= 300),
    client_id text not null check (length(client_id) <= 200),
    secret_nonce bytea not null,
    secret_ciphertext bytea not null,
    -- The sign-in button's words (Persian), e.g. «ورود با حساب سازمانی».
    label text not null check (length(label) between 1 and 80),
    enabled boolean not null default false,
    updated_at timestamptz not null default now()
);

-- The provider's subject (`sub`) of the member's account there; one member per subject.
alter table staff add column sso_subject text check (length(sso_subject) <= 255);
create unique index staff_sso_subject_key on staff (sso_subject) where sso_subject is not null;

-- A sign-in sent to the provider and not yet back. The browser holds a random token in a
-- cookie, which is also the PKCE verifier; only its hash is stored here, with the `state` and
-- `nonce` sent along. `join` links the member of an invitation (by the invitation's hash),
-- `link` the signed-in member who asked, `sign_in` finds the member by subject.
create table sso_flows (
    token_hash bytea primary key,
    state text not null,
    nonce text not null,
    purpose text not null check (purpose in ('sign_in', 'join', 'link')),
    staff_id bigint references staff (id) on delete cascade,
    invitation_hash bytea,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    check ((purpose = 'sign_in') = (staff_id is null)),
    check ((purpose = 'join') = (invitation_hash is not null))
);
create index sso_flows_expiry_idx on sso_flows (expires_at);
