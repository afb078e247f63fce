import pytest
import torch

from regdakit.keypoints import BODY16, HAND21, LSP14_NAMES, Skeleton, lsp14_to_body16


def test_hand21_order_and_groups():
    assert HAND21.names[0] == "wrist"
    assert HAND21.names[1:5] == ("thumb_mcp", "thumb_pip", "thumb_dip", "thumb_tip")
    assert HAND21.names[17:21] == ("little_mcp", "little_pip", "little_dip", "little_tip")
    assert list(HAND21.groups) == ["MCP", "PIP", "DIP", "Fingertip", "all"]
    assert HAND21.groups["all"] == tuple(range(21))  # the wrist counts in "all"
    grouped = sorted(i for g in ("MCP", "PIP", "DIP", "Fingertip") for i in HAND21.groups[g])
    assert grouped == list(range(1, 21))  # the wrist is in no finger group
    assert len(HAND21.edges) == 20 and len(HAND21.colors) == 21


def test_body16_groups_are_the_12_limb_keypoints():
    assert list(BODY16.groups) == ["Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "all"]
    limbs = sorted(i for g, m in BODY16.groups.items() if g != "all" for i in m)
    assert sorted(BODY16.groups["all"]) == limbs and len(limbs) == 12
    for excluded in ("head_top", "upper_neck", "thorax", "pelvis"):
        assert BODY16.index(excluded) not in BODY16.groups["all"]


def test_flip_pairs_swap_left_and_right_names():
    perm = BODY16.flip_permutation()
    for k, j in enumerate(perm.tolist()):
        a, b = BODY16.names[k], BODY16.names[j]
        if a[:2] in ("l_", "r_"):
            assert b[2:] == a[2:] and b[:2] != a[:2]
        else:
            assert a == b
    assert torch.equal(perm[perm], torch.arange(16))  # an involution
    assert torch.equal(HAND21.flip_permutation(), torch.arange(21))


def test_lsp_mapping_names_match_and_missing_slots_invisible():
    kp = torch.arange(28, dtype=torch.float32).reshape(14, 2)
    mapped, vis = lsp14_to_body16(kp, torch.ones(14))
    for slot, name in enumerate(BODY16.names):
        if slot in (6, 7):
            assert not vis[slot] and mapped[slot].tolist() == [0.0, 0.0]
            continue
        lsp_name = LSP14_NAMES[[i for i, n in enumerate(LSP14_NAMES) if mapped[slot, 0] == kp[i, 0]][0]]
        assert lsp_name == name or (name, lsp_name) == ("upper_neck", "neck")
        assert vis[slot]


def test_lsp_mapping_batched_and_bad_shape():
    mapped, vis = lsp14_to_body16(torch.zeros(3, 14, 2), torch.zeros(3, 14))
    assert mapped.shape == (3, 16, 2) and not vis.any()
    with pytest.raises(ValueError, match=r"\(\.\.\., 14, 2\)"):
        lsp14_to_body16(torch.zeros(16, 2), torch.zeros(16))


def test_skeleton_validation_names_the_problem():
    with pytest.raises(ValueError, match="edges.*\\[5\\]"):
        Skeleton("tri", ("a", "b", "c"), {}, ((0, 5),))
    with pytest.raises(ValueError, match="unique"):
        Skeleton("dup", ("a", "a"), {}, ())
    with pytest.raises(ValueError, match="two flip pairs"):
        Skeleton("f", ("a", "b", "c"), {}, (), flip_pairs=((0, 1), (1, 2)))
    custom = Skeleton("tri", ("a", "b", "c"), {"tip": (2,)}, ((0, 1), (1, 2)))
    assert custom.groups["all"] == (0, 1, 2) and len(custom.colors) == 3
    with pytest.raises(KeyError, match="valid names"):
        custom.index("d")
