# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""EC2 instance-type capacity table used by the EC2 mock and by other code.

``INSTANCE_TYPES`` maps an EC2 instance type name (``InstanceType`` in the EC2 API,
``instance_type`` in amazon.aws output) to its hardware size, with the values
AWS publishes in ``DescribeInstanceTypes``:

* ``vcpu``: number of vCPUs (``VCpuInfo.DefaultVCpus``), an int. Kubernetes reports this
  as the node's ``cpu`` capacity in cores (1 vCPU = 1 core = 1000m).
* ``memory_mib``: memory in MiB (``MemoryInfo.SizeInMiB``), an int. Multiply by
  1024 * 1024 for bytes; Kubernetes reports capacity in ``Ki`` (``memory_mib * 1024``).

Covered families: t3 (nano..2xlarge), m5/c5/r5 (large..24xlarge), m6i/c6i/r6i (large..32xlarge). A type missing
here is refused with :class:`UnknownInstanceTypeError` (``make validate`` reports it for inventories); add its
``DescribeInstanceTypes`` figures here to use it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


INSTANCE_TYPES = {
    # t3: burstable, 2 vCPU up to xlarge
    "t3.nano": {"vcpu": 2, "memory_mib": 512},
    "t3.micro": {"vcpu": 2, "memory_mib": 1024},
    "t3.small": {"vcpu": 2, "memory_mib": 2048},
    "t3.medium": {"vcpu": 2, "memory_mib": 4096},
    "t3.large": {"vcpu": 2, "memory_mib": 8192},
    "t3.xlarge": {"vcpu": 4, "memory_mib": 16384},
    "t3.2xlarge": {"vcpu": 8, "memory_mib": 32768},
    # m5: general purpose, 4 GiB per vCPU
    "m5.large": {"vcpu": 2, "memory_mib": 8192},
    "m5.xlarge": {"vcpu": 4, "memory_mib": 16384},
    "m5.2xlarge": {"vcpu": 8, "memory_mib": 32768},
    "m5.4xlarge": {"vcpu": 16, "memory_mib": 65536},
    "m5.8xlarge": {"vcpu": 32, "memory_mib": 131072},
    "m5.12xlarge": {"vcpu": 48, "memory_mib": 196608},
    "m5.16xlarge": {"vcpu": 64, "memory_mib": 262144},
    "m5.24xlarge": {"vcpu": 96, "memory_mib": 393216},
    # c5: compute optimised, 2 GiB per vCPU
    "c5.large": {"vcpu": 2, "memory_mib": 4096},
    "c5.xlarge": {"vcpu": 4, "memory_mib": 8192},
    "c5.2xlarge": {"vcpu": 8, "memory_mib": 16384},
    "c5.4xlarge": {"vcpu": 16, "memory_mib": 32768},
    "c5.9xlarge": {"vcpu": 36, "memory_mib": 73728},
    "c5.12xlarge": {"vcpu": 48, "memory_mib": 98304},
    "c5.18xlarge": {"vcpu": 72, "memory_mib": 147456},
    "c5.24xlarge": {"vcpu": 96, "memory_mib": 196608},
    # r5: memory optimised, 8 GiB per vCPU
    "r5.large": {"vcpu": 2, "memory_mib": 16384},
    "r5.xlarge": {"vcpu": 4, "memory_mib": 32768},
    "r5.2xlarge": {"vcpu": 8, "memory_mib": 65536},
    "r5.4xlarge": {"vcpu": 16, "memory_mib": 131072},
    "r5.8xlarge": {"vcpu": 32, "memory_mib": 262144},
    "r5.12xlarge": {"vcpu": 48, "memory_mib": 393216},
    "r5.16xlarge": {"vcpu": 64, "memory_mib": 524288},
    "r5.24xlarge": {"vcpu": 96, "memory_mib": 786432},
    # m6i: general purpose (Ice Lake), 4 GiB per vCPU
    "m6i.large": {"vcpu": 2, "memory_mib": 8192},
    "m6i.xlarge": {"vcpu": 4, "memory_mib": 16384},
    "m6i.2xlarge": {"vcpu": 8, "memory_mib": 32768},
    "m6i.4xlarge": {"vcpu": 16, "memory_mib": 65536},
    "m6i.8xlarge": {"vcpu": 32, "memory_mib": 131072},
    "m6i.12xlarge": {"vcpu": 48, "memory_mib": 196608},
    "m6i.16xlarge": {"vcpu": 64, "memory_mib": 262144},
    "m6i.24xlarge": {"vcpu": 96, "memory_mib": 393216},
    "m6i.32xlarge": {"vcpu": 128, "memory_mib": 524288},
    # c6i: compute optimised (Ice Lake), 2 GiB per vCPU
    "c6i.large": {"vcpu": 2, "memory_mib": 4096},
    "c6i.xlarge": {"vcpu": 4, "memory_mib": 8192},
    "c6i.2xlarge": {"vcpu": 8, "memory_mib": 16384},
    "c6i.4xlarge": {"vcpu": 16, "memory_mib": 32768},
    "c6i.8xlarge": {"vcpu": 32, "memory_mib": 65536},
    "c6i.12xlarge": {"vcpu": 48, "memory_mib": 98304},
    "c6i.16xlarge": {"vcpu": 64, "memory_mib": 131072},
    "c6i.24xlarge": {"vcpu": 96, "memory_mib": 196608},
    "c6i.32xlarge": {"vcpu": 128, "memory_mib": 262144},
    # r6i: memory optimised (Ice Lake), 8 GiB per vCPU
    "r6i.large": {"vcpu": 2, "memory_mib": 16384},
    "r6i.xlarge": {"vcpu": 4, "memory_mib": 32768},
    "r6i.2xlarge": {"vcpu": 8, "memory_mib": 65536},
    "r6i.4xlarge": {"vcpu": 16, "memory_mib": 131072},
    "r6i.8xlarge": {"vcpu": 32, "memory_mib": 262144},
    "r6i.12xlarge": {"vcpu": 48, "memory_mib": 393216},
    "r6i.16xlarge": {"vcpu": 64, "memory_mib": 524288},
    "r6i.24xlarge": {"vcpu": 96, "memory_mib": 786432},
    "r6i.32xlarge": {"vcpu": 128, "memory_mib": 1048576},
}


class UnknownInstanceTypeError(KeyError):
    """Raised by :func:`get_instance_type` for a name not in :data:`INSTANCE_TYPES`.

    Subclasses ``KeyError`` so ``except KeyError`` works; ``str()`` gives the full message
    (not the repr-quoted key KeyError normally prints). ``.instance_type`` is the bad name.
    """

    def __init__(self, instance_type):
        self.instance_type = instance_type
        super(UnknownInstanceTypeError, self).__init__(instance_type)

    def __str__(self):
        return (
            "Unknown EC2 instance type %r: it is not in the k3s.autoscaler instance-type table "
            "(plugins/module_utils/instance_types.py). Known types: %s"
        ) % (self.instance_type, ", ".join(known_instance_types()))


def _sort_key(name):
    family, dummy, size = name.partition(".")
    order = ["nano", "micro", "small", "medium", "large", "xlarge"]
    if size in order:
        rank = (0, order.index(size))
    else:
        # "2xlarge", "24xlarge" ...
        rank = (1, int(size[: -len("xlarge")] or 1))
    return (family, rank)


def known_instance_types():
    """All known instance type names, grouped by family and sorted by size."""
    return sorted(INSTANCE_TYPES, key=_sort_key)


def get_instance_type(name):
    """Return a copy of ``{"vcpu": int, "memory_mib": int}`` for instance type ``name``.

    Raises :class:`UnknownInstanceTypeError` (a ``KeyError``) listing the known types when
    ``name`` is not in the table. Names are exact and case-sensitive, as in the EC2 API.
    """
    try:
        return dict(INSTANCE_TYPES[name])
    except (KeyError, TypeError):
        raise UnknownInstanceTypeError(name)
