-- The roles and the database, run by postgres-entrypoint.sh as the superuser on every start of the db
-- container. Idempotent: a fresh volume, an up-to-date one and one made before these roles existed (every
-- object owned by the superuser) all end the same way. psql variables: admin, owner, app and database;
-- the passwords come from the environment. The application role's table rights are granted by migration
-- 0010 (app/core/grants.py), which knows the tables; here it only gets to connect.
\set ON_ERROR_STOP on
\getenv admin_password POSTGRES_ADMIN_PASSWORD
\getenv owner_password POSTGRES_OWNER_PASSWORD
\getenv app_password POSTGRES_PASSWORD
-- A statement that fails is logged with its text: not these, which carry passwords.
SET log_min_error_statement = panic;
SET log_statement = 'none';

SELECT format('CREATE ROLE %I', :'owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner')
\gexec
SELECT format('CREATE ROLE %I', :'app') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app')
\gexec
-- Passwords follow the environment, so changing them there and restarting the db container rotates them.
ALTER ROLE :"admin" PASSWORD :'admin_password';
ALTER ROLE :"owner" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'owner_password';
ALTER ROLE :"app" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
  PASSWORD :'app_password';

SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'owner')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database')
\gexec
ALTER DATABASE :"database" OWNER TO :"owner";
-- Only the two roles connect to it; nobody else gets temporary tables in it.
REVOKE ALL ON DATABASE :"database" FROM PUBLIC;
GRANT CONNECT ON DATABASE :"database" TO :"app";

\connect :"database"
-- The public schema belongs to whoever owns the database (Postgres 15's default); only the owner creates
-- in it, the application only uses it.
ALTER SCHEMA public OWNER TO pg_database_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO :"app";

-- Hand every object of the schema that is not the owner's to the owner. REASSIGN OWNED cannot do this for
-- objects of the bootstrap superuser (an old volume's), so each one is altered. Indexes and the sequences of
-- identity and serial columns follow their tables.
SET pyauth_setup.owner = :'owner';
DO $$
DECLARE
  owner_name text := current_setting('pyauth_setup.owner');
  item record;
BEGIN
  FOR item IN
    SELECT c.oid::regclass AS name,
           CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                          WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END AS kind
    FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
      AND pg_get_userbyid(c.relowner) <> owner_name
      AND NOT EXISTS (  -- a sequence owned by a column goes with its table
        SELECT FROM pg_depend d
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
          AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER %s %s OWNER TO %I', item.kind, item.name, owner_name);
  END LOOP;
  FOR item IN
    SELECT t.oid::regtype AS name
    FROM pg_type t
    WHERE t.typnamespace = 'public'::regnamespace
      AND t.typtype IN ('e', 'd', 'r') AND pg_get_userbyid(t.typowner) <> owner_name
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %I', item.name, owner_name);
  END LOOP;
  FOR item IN
    SELECT p.oid::regprocedure AS name
    FROM pg_proc p
    WHERE p.pronamespace = 'public'::regnamespace AND pg_get_userbyid(p.proowner) <> owner_name
  LOOP
    EXECUTE format('ALTER ROUTINE %s OWNER TO %I', item.name, owner_name);
  END LOOP;
END
$$;
