-- Deletes what `make bench` created in the development database: its accounts (bench-…@bench.example),
-- whose sessions, refresh tokens, account tokens, login devices and second factors (mfa_totp,
-- mfa_recovery_codes, mfa_tokens) go with them (ON DELETE CASCADE), and, where those tables exist,
-- their audit events, queued mails, login throttles (login and mfa) and the rate-limit counters of the
-- bench's client addresses (198.18.0.0/15, RFC 2544). Run by bench/run.sh before and after every run.
DO $$
BEGIN
  IF to_regclass('audit_events') IS NOT NULL THEN
    DELETE FROM audit_events
    WHERE user_id IN (SELECT id FROM users WHERE email LIKE 'bench-%@bench.example')
       OR ip_address LIKE '198.18.%' OR ip_address LIKE '198.19.%';
  END IF;
  IF to_regclass('mail_outbox') IS NOT NULL THEN
    DELETE FROM mail_outbox WHERE recipient LIKE '%@bench.example';
  END IF;
  IF to_regclass('login_throttles') IS NOT NULL THEN
    DELETE FROM login_throttles WHERE email LIKE 'bench-%@bench.example';
  END IF;
  IF to_regclass('rate_limit_hits') IS NOT NULL THEN
    DELETE FROM rate_limit_hits WHERE key LIKE '%:198.18.%' OR key LIKE '%:198.19.%';
  END IF;
  DELETE FROM users WHERE email LIKE 'bench-%@bench.example';
END
$$;
