-- Users signed in through the console's identity provider: the provider's subject, linked to a Warden user at
-- the first sign-in (by email), and what that sign-in granted from group claims (role assignments, teams).
CREATE TABLE user_identities (
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    granted TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (issuer, subject)
);
