"""Access control: policy rules, the authorizer, token/policy/role models and their resolution.

The package is pure (no I/O, no clock of its own, no store): ``rules`` parses the rule language
(HCL and JSON, current and legacy syntax), ``authorizer`` decides one permission check from
compiled rules, ``model`` holds the replicated rows (tokens, policies, roles) and the built-ins
(``global-management``, the anonymous token, identities, templated policies), and ``resolver``
turns a secret into an authorizer through a cache that the ACL tables' index invalidates, so a
permission check never costs a Raft round trip.  See docs/compat/acl.md.
"""
