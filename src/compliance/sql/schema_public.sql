-- Whether everyone (PUBLIC) may create objects in schema public; no row without that schema.
SELECT EXISTS (SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
               WHERE a.grantee = 0 AND a.privilege_type = 'CREATE') AS public_create
FROM pg_namespace n WHERE n.nspname = 'public'
