"""Agent configuration: command-line flags, JSON/HCL config files, defaults, validation.

This mirrors how ``consul agent`` builds its runtime configuration so that existing
deployments (the seed StatefulSet, Helm-style command lines, config directories) work
unchanged.  The sources are layered, lowest precedence first::

    built-in defaults  <  -dev defaults  <  config files/dirs (in command-line order)
                       <  -hcl fragments  <  command-line flags

and merged with Consul's rules: scalars are replaced, lists are appended, maps (sections
such as ``ports``/``acl`` and user maps such as ``node_meta``) are merged key by key.

Each source is normalised (legacy key aliases, python-hcl2's list-wrapped blocks) and
type-checked on its own, so an error names the file it came from; only then are the
sources merged and turned into a frozen :class:`Config`, after which cross-field rules
(``bootstrap`` vs ``bootstrap_expect``, ``data_dir`` required, ...) are checked.

Defaults follow Consul's ``agent/config/default.go`` and the agent configuration
reference (``website/content/docs/agent/config/config-files.mdx`` and ``cli-flags.mdx``);
docs/compat/config.md summarises the parts Muster relies on.

Durations are stored as float seconds (see :mod:`muster.durations`); use
:func:`muster.durations.format_duration` to show them the Go way.  Scalars typed as strings
(``"8500"``, ``"true"``, ``"30s"``) are read with Go's rules (:mod:`muster.goparse`).

Reload: the agent re-runs :func:`parse_agent_flags` with the original argv (which re-reads
every file) and calls :func:`reloadable_diff` to learn what it may apply live.

Modules (imports point down this list)
--------------------------------------
* :mod:`.errors`   -- :class:`ConfigError`, :class:`UsageError`, :class:`HelpRequested`.
* :mod:`.schema`   -- the frozen dataclasses; every field carries a *kind* (``bool``,
  ``int``, ``str``, ``float``, ``dur``, ``opt*``, ``strlist``, ``strmap``, ``durmap``,
  ``rawmap``, ``deflist``, ``section``) that drives coercion, merge and diff.
* :mod:`.merge`    -- merging raw and typed sources; building the dataclasses.
* :mod:`.sources`  -- reading files, directories, HCL/JSON text; legacy key aliases.
* :mod:`.coerce`   -- type-checking one source against the schema.
* :mod:`.flags`    -- the ``muster agent`` flag table, usage text and flag parsing.
* :mod:`.validate` -- the finalisation steps (cross-field rules, derived values).
* :mod:`.build`    -- :func:`parse_agent_flags` and :func:`config_from_dict`.
* :mod:`.reload`   -- :data:`RELOADABLE_KEYS` and the reload diff.

Adding a configuration key, step by step
----------------------------------------
1. **Schema** (:mod:`.schema`): declare a field on the dataclass of its block (``Config``
   for a top-level key, ``ACLConfig`` for ``acl { ... }``, ...) with its Consul default and
   kind: ``_f(default, "int")`` for a scalar, ``_fl()`` for a list of strings, ``_fm()`` for
   a user map, ``_fs(Section)`` for a new nested block (a new ``@dataclass(frozen=True)``
   whose fields are declared the same way).  Durations use kind ``"dur"`` and are float
   seconds.  A block whose keys Muster accepts but does not model may list them in a
   ``PASSTHROUGH`` class variable (kept in ``extra``, as ``TelemetryConfig`` does); a
   top-level key Consul accepts that Muster does not model goes in ``PASSTHROUGH_TOP``
   (remove it from there when you model it).
2. **HCL/JSON name**: the field's name *is* the key in files, ``-hcl`` fragments and JSON
   (snake_case, as in Consul's documentation); nothing else to register.  For a legacy or
   alias spelling add a row to ``_TOP_ALIASES`` (or ``_TOP_LIST_ALIASES`` for keys appended
   to a list) in :mod:`.sources`.  An HCL block that is a *user map* (its keys are the
   user's, quoted: ``node_meta { "rack" = "r1" }``) must also be added to
   ``_HCL_USER_MAP_BLOCK`` there.
3. **Flag**, if Consul has one: one row in ``_flag_table`` in :mod:`.flags` (flag name,
   kind, dotted config path, metavar, help).  The usage text is generated from the table.
4. **Validation** (:mod:`.validate`): type checks are automatic from the kind; a rule on the
   value or across keys goes in a named step (add to the step of its block, or write a new
   ``_step(cfg, changes, warnings)`` and list it in ``FINALISE_STEPS``).  Derived or
   normalised values are written to ``changes``.
5. **Reload** (:mod:`.reload`): keys are restart-only by default.  If the agent applies the
   key live on SIGHUP / ``PUT /v1/agent/reload``, add its name (or dotted path, like
   ``acl.tokens``) to ``RELOADABLE_KEYS`` and apply it in the agent's reload handler.
6. **Tests**: ``tests/unit/test_config.py`` -- the default, a file/HCL value, the flag, and
   each validation error.  ``tests/unit/test_config_package.py`` checks that the flag,
   alias, user-map and reload tables name fields the schema has, with matching kinds.
"""

from __future__ import annotations

from muster.goparse import parse_bool as parse_go_bool

from .build import config_from_dict, parse_agent_flags
from .errors import ConfigError, HelpRequested, UsageError
from .flags import USAGE
from .reload import RELOADABLE_KEYS, changed_keys, non_reloadable_diff, reloadable_diff
from .schema import (
    DNSSOA,
    ACLConfig,
    ACLTokens,
    Addresses,
    AutopilotConfig,
    Config,
    DNSConfig,
    HTTPConfig,
    LimitsConfig,
    PerformanceConfig,
    Ports,
    TelemetryConfig,
    TLSConfig,
    TLSProtocolConfig,
    UIConfig,
)
from .validate import audit_file_sinks, validate_node_meta

__all__ = [
    "ACLConfig",
    "ACLTokens",
    "Addresses",
    "AutopilotConfig",
    "Config",
    "ConfigError",
    "DNSConfig",
    "DNSSOA",
    "HTTPConfig",
    "HelpRequested",
    "LimitsConfig",
    "PerformanceConfig",
    "Ports",
    "RELOADABLE_KEYS",
    "TLSConfig",
    "TLSProtocolConfig",
    "TelemetryConfig",
    "UIConfig",
    "USAGE",
    "UsageError",
    "changed_keys",
    "config_from_dict",
    "non_reloadable_diff",
    "parse_agent_flags",
    "parse_go_bool",
    "reloadable_diff",
    "audit_file_sinks",
    "validate_node_meta",
]
