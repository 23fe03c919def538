# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import pytest

from ansible_collections.k3s.autoscaler.plugins.module_utils.instance_types import (
    INSTANCE_TYPES,
    UnknownInstanceTypeError,
    get_instance_type,
    known_instance_types,
)


@pytest.mark.parametrize(
    "name,vcpu,memory_mib",
    [
        ("t3.nano", 2, 512),
        ("t3.medium", 2, 4096),
        ("t3.2xlarge", 8, 32768),
        ("m5.large", 2, 8192),
        ("m5.24xlarge", 96, 393216),
        ("c5.9xlarge", 36, 73728),
        ("c5.18xlarge", 72, 147456),
        ("r5.large", 2, 16384),
        ("r5.24xlarge", 96, 786432),
        ("m6i.large", 2, 8192),
        ("c6i.32xlarge", 128, 262144),
        ("r6i.16xlarge", 64, 524288),
    ],
)
def test_real_aws_values(name, vcpu, memory_mib):
    assert get_instance_type(name) == {"vcpu": vcpu, "memory_mib": memory_mib}


def test_families_complete():
    assert [n for n in known_instance_types() if n.startswith("t3.")] == [
        "t3.nano", "t3.micro", "t3.small", "t3.medium", "t3.large", "t3.xlarge", "t3.2xlarge",
    ]
    for fam in ("m5", "c5", "r5"):
        names = [n for n in known_instance_types() if n.startswith(fam + ".")]
        assert names[0] == fam + ".large" and names[-1] == fam + ".24xlarge"
        # memory per vCPU is constant within these families
        ratios = set(INSTANCE_TYPES[n]["memory_mib"] // INSTANCE_TYPES[n]["vcpu"] for n in names)
        assert ratios == {{"m5": 4096, "c5": 2048, "r5": 8192}[fam]}
    for fam in ("m6i", "c6i", "r6i"):
        names = [n for n in known_instance_types() if n.startswith(fam + ".")]
        assert [n.split(".")[1] for n in names] == ["large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge",
                                                    "16xlarge", "24xlarge", "32xlarge"]
        ratios = set(INSTANCE_TYPES[n]["memory_mib"] // INSTANCE_TYPES[n]["vcpu"] for n in names)
        assert ratios == {{"m6i": 4096, "c6i": 2048, "r6i": 8192}[fam]}


def test_get_returns_copy():
    got = get_instance_type("m5.large")
    got["vcpu"] = 999
    assert INSTANCE_TYPES["m5.large"]["vcpu"] == 2


@pytest.mark.parametrize("bad", ["m5.huge", "M5.LARGE", "", None])
def test_unknown_type_is_keyerror_listing_known(bad):
    with pytest.raises(KeyError) as exc:
        get_instance_type(bad)
    assert isinstance(exc.value, UnknownInstanceTypeError)
    msg = str(exc.value)
    assert repr(bad) in msg
    assert "t3.nano" in msg and "r5.24xlarge" in msg
