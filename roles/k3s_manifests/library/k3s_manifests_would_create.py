#!/usr/bin/python
# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt) SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: k3s_manifests_would_create
short_description: Report a namespaced object as "would be created" in check mode (role-local)
description:
  - Used by the k3s_manifests role only, in check mode, for the namespaced objects (ServiceAccount, ConfigMap,
    PersistentVolumeClaim, CronJob, Service) when the target Namespace does not exist yet
    (C(kubernetes.core.k8s_info) found no Namespace of that name).
  - The API server cannot dry-run an object into a namespace that does not exist (it answers
    404 C(namespaces "<name>" not found)), real Kubernetes included. The Namespace itself is dry-run by
    C(kubernetes.core.k8s) and would be created first, so every object in it would be created too.
  - Makes no API call and changes nothing. Reports C(changed=true) and, with C(--diff), a diff from
    nothing (C({})) to the rendered object, the way C(kubernetes.core.k8s) reports a new object.
    The object is the rendered manifest, not a server response, so server-set fields (uid, creationTimestamp,
    defaults) are absent.
  - Fails when not in check mode (a real run applies with C(kubernetes.core.k8s)).
options:
  definition:
    description:
      - The rendered manifest (one object) that C(kubernetes.core.k8s) would apply.
      - Must have C(apiVersion), C(kind), C(metadata.name) and C(metadata.namespace).
    type: dict
    required: true
author:
  - k3s-autoscaler maintainers
"""

EXAMPLES = r"""
- name: Report the namespaced objects as would be created (check mode, namespace missing)
  k3s_manifests_would_create:
    definition: "{{ lookup('ansible.builtin.template', 'configmap.yaml.j2') | from_yaml }}"
  when: ansible_check_mode
"""

RETURN = r"""
result:
  description: The rendered object that would be created (no server-set fields).
  returned: always
  type: dict
method:
  description: Always C(create), as C(kubernetes.core.k8s) reports for a new object.
  returned: always
  type: str
msg:
  description: Which object would be created in which namespace, and why it was not dry-run on the server.
  returned: always
  type: str
diff:
  description: C(before) is C({}) (the object does not exist), C(after) the rendered object.
  returned: with --diff
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule


def main():
    module = AnsibleModule(argument_spec=dict(definition=dict(type="dict", required=True)),
                           supports_check_mode=True)
    definition = module.params["definition"]
    metadata = definition.get("metadata") or {}
    missing = [field for field, value in (("apiVersion", definition.get("apiVersion")),
                                          ("kind", definition.get("kind")),
                                          ("metadata.name", metadata.get("name")),
                                          ("metadata.namespace", metadata.get("namespace"))) if not value]
    if missing:
        module.fail_json(msg="definition lacks %s: pass one rendered namespaced manifest of the k3s_manifests role"
                         % ", ".join(missing))
    if not module.check_mode:
        module.fail_json(msg="k3s_manifests_would_create only reports in check mode; a real run applies %s %s/%s "
                         "with kubernetes.core.k8s" % (definition["kind"], metadata["namespace"], metadata["name"]))
    result = dict(
        changed=True,
        method="create",
        result=definition,
        msg="%s %s/%s would be created: namespace %s does not exist yet (it would be created first), so the API "
            "server cannot dry-run objects in it" % (definition["kind"], metadata["namespace"], metadata["name"],
                                                    metadata["namespace"]),
    )
    if module._diff:
        result["diff"] = dict(before={}, after=definition)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
