"""Each shipped class map against the published table it says it follows (its ``follows``),
entry by entry. The tables are transcribed here as data, each with its citation, in the
numbering of the publication (dataset class id -> train id), independently of the JSON files;
a map whose ``follows`` is "no published table" is checked against the label definitions it
names."""
import json

import pytest

from mtl_adapters.datasets.class_map import CLASS_MAP_DIR, IGNORE, load_class_map
from mtl_adapters.datasets.cityscapes import LABELS
from mtl_adapters.datasets.vkitti2 import CATEGORIES

#: SYNTHIA-RAND-CITYSCAPES class ids (README.txt of the archive), id -> name
SYNTHIA_IDS = ('void', 'sky', 'building', 'road', 'sidewalk', 'fence', 'vegetation', 'pole',
               'car', 'traffic sign', 'pedestrian', 'bicycle', 'motorcycle', 'parking-slot',
               'road-work', 'traffic light', 'terrain', 'rider', 'truck', 'bus', 'train', 'wall',
               'lanemarking')
CITYSCAPES_IDS = {name: label_id for label_id, name, _ in LABELS}

# Lopes, Vu & de Charette, "Cross-task Attention Mechanism for Dense Multi-task Learning",
# WACV 2023 (XTAM-UDA, the UDA baseline of the VTAGML paper's UDA table); their code
# https://github.com/cv-rits/DenseMTL, dataset/semseg/mappings.py, class Mappings
# (VKITTI2 ids are the row order of colors.txt, Cityscapes ids its label ids):
DENSEMTL_VKITTI2_CLS08 = {5: 0, 4: 1, 9: 2, 8: 3, 7: 4, 2: 5, 3: 5, 1: 6, 11: 7, 12: 7, 13: 7}
DENSEMTL_CITYSCAPES_CLS08 = {7: 0, 11: 1, 17: 2, 19: 3, 20: 4, 21: 5, 23: 6, 26: 7, 28: 7}
DENSEMTL_CITYSCAPES_CLS16 = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 23: 9,
                             24: 10, 25: 11, 26: 12, 28: 13, 32: 14, 33: 15}
DENSEMTL_SYNTHIA_CLS16 = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 1: 9, 10: 10,
                          17: 11, 8: 12, 19: 13, 12: 14, 11: 15}
# Hoyer, Dai & Van Gool, DAFormer (CVPR 2022), tools/convert_datasets/synthia.py of
# https://github.com/lhoyer/DAFormer: SYNTHIA id -> Cityscapes train id (19 classes)
DAFORMER_SYNTHIA_TO_TRAINID = {3: 0, 4: 1, 2: 2, 21: 3, 5: 4, 7: 5, 15: 6, 9: 7, 6: 8, 16: 9,
                               1: 10, 10: 11, 17: 12, 8: 13, 18: 14, 19: 15, 20: 16, 12: 17,
                               11: 18}
# Cityscapes' label definitions (cityscapesScripts helpers/labels.py; the class definitions of
# cityscapes-dataset.com: "car" includes vans, guard rail is a void label): VKITTI2 category ->
# Cityscapes train id
CITYSCAPES_DEFS_VKITTI2_TO_TRAINID = {
    'Terrain': 9, 'Sky': 10, 'Tree': 8, 'Vegetation': 8, 'Building': 2, 'Road': 0,
    'GuardRail': IGNORE, 'TrafficSign': 7, 'TrafficLight': 6, 'Pole': 5, 'Misc': IGNORE,
    'Truck': 14, 'Car': 13, 'Van': 13, 'Undefined': IGNORE}
#: the 8 shared classes, Cityscapes train id -> 8-class id (Cityscapes train-id order)
SHARED8 = {0: 0, 2: 1, 5: 2, 6: 3, 7: 4, 8: 5, 10: 6, 13: 7}


def _table(mapping, n):
    """{id: train id} over ids 0..n-1 (ids a table leaves out are unlabelled)."""
    return [mapping.get(i, IGNORE) for i in range(n)]


def _lut(name, label_set):
    cmap = load_class_map(name, label_set=label_set)
    return cmap, [int(v) for v in cmap.lut[:len(cmap.source_classes)]]


def test_vkitti2_cityscapes8_is_xtam_udas_protocol():
    cmap, lut = _lut('cityscapes8', 'vkitti2')
    assert list(cmap.source_classes) == list(CATEGORIES)
    assert lut == _table(DENSEMTL_VKITTI2_CLS08, len(CATEGORIES))
    assert 'DenseMTL' in cmap.follows and 'Mappings.VKitti2' in cmap.follows
    assert {CATEGORIES[i] for i, t in enumerate(lut) if t == 7} == {'Truck', 'Car', 'Van'}


def test_cityscapes_cityscapes8_is_xtam_udas_protocol():
    cmap, lut = _lut('cityscapes8', 'cityscapes')
    assert [CITYSCAPES_IDS[c] for c in cmap.source_classes] == list(range(len(LABELS)))
    assert lut == _table(DENSEMTL_CITYSCAPES_CLS08, len(LABELS))
    assert 'Mappings.Cityscapes' in cmap.follows
    # the two sides of one protocol: same classes, same order
    assert cmap.class_names == load_class_map('cityscapes8', label_set='vkitti2').class_names


def test_the_labeldefs_variants_follow_cityscapes_definitions():
    vk, lut = _lut('cityscapes8-labeldefs', 'vkitti2')
    expected = {c: SHARED8.get(t, IGNORE) for c, t in CITYSCAPES_DEFS_VKITTI2_TO_TRAINID.items()}
    assert dict(zip(vk.source_classes, lut)) == expected
    cs, lut = _lut('cityscapes8-labeldefs', 'cityscapes')
    train_ids = {label_id: train for label_id, _, train in LABELS}
    assert lut == [SHARED8.get(train_ids[i], IGNORE) for i in range(len(LABELS))]
    assert vk.class_names == cs.class_names
    assert 'no published table' in vk.follows and 'no published table' in cs.follows
    # where the default and this variant differ: VKITTI2 Truck, Cityscapes bus
    default_vk = load_class_map('cityscapes8', label_set='vkitti2').mapping()
    default_cs = load_class_map('cityscapes8', label_set='cityscapes').mapping()
    assert {c for c, t in vk.mapping().items() if default_vk[c] != t} == {'Truck'}
    assert {c for c, t in cs.mapping().items() if default_cs[c] != t} == {'bus'}


def test_vkitti2_cityscapes19_follows_cityscapes_definitions():
    cmap, lut = _lut('cityscapes19', 'vkitti2')
    assert dict(zip(cmap.source_classes, lut)) == CITYSCAPES_DEFS_VKITTI2_TO_TRAINID
    assert 'no published' in cmap.follows


def test_synthia_and_cityscapes_16_class_protocol():
    cmap, lut = _lut('cityscapes16', 'synthia')
    assert list(cmap.source_classes) == list(SYNTHIA_IDS)
    assert lut == _table(DENSEMTL_SYNTHIA_CLS16, len(SYNTHIA_IDS))
    # DAFormer's 19-class conversion less terrain, truck and train, renumbered 0..15
    keep = sorted(set(DAFORMER_SYNTHIA_TO_TRAINID.values()) - {9, 14, 16})
    assert lut == _table({s: keep.index(t) for s, t in DAFORMER_SYNTHIA_TO_TRAINID.items()
                          if t in keep}, len(SYNTHIA_IDS))
    cs, lut = _lut('cityscapes16', 'cityscapes')
    assert lut == _table(DENSEMTL_CITYSCAPES_CLS16, len(LABELS))
    assert cs.class_names == cmap.class_names
    assert 'Mappings.Synthia' in cmap.follows and 'Mappings.Cityscapes' in cs.follows


def test_synthia_cityscapes19_is_daformers_conversion():
    cmap, lut = _lut('cityscapes19', 'synthia')
    assert lut == _table(DAFORMER_SYNTHIA_TO_TRAINID, len(SYNTHIA_IDS))
    assert 'DAFormer' in cmap.follows
    assert cmap.eval_classes == tuple(range(19))
    shared, lut16 = _lut('cityscapes19-shared16', 'synthia')
    assert lut16 == _table({s: t for s, t in DAFORMER_SYNTHIA_TO_TRAINID.items()
                            if t not in (9, 14, 16)}, len(SYNTHIA_IDS))
    assert shared.class_names == cmap.class_names


def test_every_shipped_map_names_what_it_follows():
    for path in sorted(CLASS_MAP_DIR.glob('*.json')):
        follows = json.loads(path.read_text()).get('follows')
        assert isinstance(follows, str) and len(follows) > 20, path.name
        assert load_class_map(path).follows == follows


def test_follows_must_be_text(tmp_path):
    raw = json.loads((CLASS_MAP_DIR / 'vkitti2_to_cityscapes8.json').read_text())
    raw['follows'] = ['DenseMTL']
    (tmp_path / 'bad.json').write_text(json.dumps(raw))
    with pytest.raises(ValueError, match='"follows" must be a string'):
        load_class_map(tmp_path / 'bad.json')
