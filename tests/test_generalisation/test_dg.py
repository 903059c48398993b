"""Domain generalisation: one class-map module for every dataset, the metric restricted to the
classes a target's labels map to, and the shipped DG configs run end to end (tiny model)."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, tiny_leaf_config, write_taskonomy_fixture
from mmengine import Config
from mmengine.runner import Runner

from mtl_adapters.datasets import TaskonomyDataset
from mtl_adapters.datasets import nyudv2, vkitti2
from mtl_adapters.datasets.class_map import CLASS_MAP_DIR, load_class_map
from mtl_adapters.evaluation import MultiTaskMetric
from mtl_adapters.structures import MultiTaskDataSample
from mtl_adapters.tasks import build_tasks
from mtl_adapters.utils import write_png

GEN = REPO / 'configs' / 'generalisation'
DG = GEN / 'dg_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-to-alt-128x128_sdne.py'
ORACLE = GEN / 'dg-oracle_vtagml-swinv2-tiny-narrow_1xb8-600_synthetic-alt-128x128_sdne.py'
SYNTHETIC = ('floor', 'wall', 'ceiling', 'table', 'cabinet', 'ball', 'vase', 'pillar')
MERGED = 'synthetic_to_merged-furniture.json'
PIPELINE = [dict(type='LoadMultiTaskImageAndAnnotations'), dict(type='PackMultiTaskInputs')]


# ------------------------------------------------------------------------------ class maps
@pytest.mark.parametrize('path', sorted(CLASS_MAP_DIR.glob('*_to_*.json')), ids=lambda p: p.stem)
def test_every_class_map_reads_through_the_one_module(path):
    """Every shipped ``<label set>_to_<protocol>.json`` loads with the shared reader; the
    evaluated classes are exactly the targets of its mapping."""
    label_set = path.stem.split('_to_')[0]
    cmap = load_class_map(path.stem.split('_to_')[1], label_set=label_set)
    spec = json.loads(path.read_text())
    targets = {v for v in spec[f'{label_set}_to_class'].values() if v is not None}
    assert [cmap.class_names[i] for i in cmap.eval_classes] == \
        [c for c in spec['class_names'] if c in targets]
    assert cmap.mapping() == {c: (spec['class_names'].index(v) if v is not None else 255)
                              for c, v in spec[f'{label_set}_to_class'].items()}


def test_datasets_use_the_shared_class_maps():
    """VKITTI2 and NYUDv2 keep their own entry points, built on the shared reader (their
    stored ids: VKITTI2 category index from 0, NYU40 id from 1)."""
    names, mapping = vkitti2.load_class_map('cityscapes19')
    shared = load_class_map('cityscapes19', label_set='vkitti2')
    assert names == list(shared.class_names) and mapping == shared.mapping()
    assert mapping['Van'] == names.index('car') and mapping['GuardRail'] == 255
    nyu = nyudv2.load_class_map('taskonomy17')
    assert nyu.first_id == 1 and nyu.lut[0] == 255
    assert [nyu.class_names[i] for i in nyu.eval_classes] == [
        'background', 'chair', 'couch', 'bed', 'dining table', 'toilet', 'tv', 'sink',
        'refrigerator', 'book']                 # bottle, vase, ... never occur on NYUDv2
    v19 = vkitti2.load_vkitti2_class_map('cityscapes19')
    assert {v19.class_names[i] for i in set(range(19)) - set(v19.eval_classes)} == {
        'sidewalk', 'wall', 'fence', 'person', 'rider', 'bus', 'train', 'motorcycle',
        'bicycle'}
    merged = load_class_map(MERGED, first_id=1, source_classes=SYNTHETIC)
    np.testing.assert_array_equal(merged(np.arange(10)),
                                  [255, 0, 1, 2, 255, 255, 5, 6, 7, 255])


def test_class_map_errors_name_the_problem(tmp_path):
    spec = json.loads((CLASS_MAP_DIR / MERGED).read_text())
    bad = dict(spec, synthetic_to_class=dict(spec['synthetic_to_class']))
    del bad['synthetic_to_class']['vase']
    (tmp_path / 'a.json').write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=r"missing \['vase'\]"):
        load_class_map(tmp_path / 'a.json')
    bad = dict(spec, synthetic_to_class=dict(spec['synthetic_to_class'], vase='furniture'))
    (tmp_path / 'b.json').write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="'vase' maps to 'furniture'"):
        load_class_map(tmp_path / 'b.json')
    with pytest.raises(ValueError, match='"nyu40_to_class"'):
        load_class_map(CLASS_MAP_DIR / MERGED, label_set='nyu40')
    with pytest.raises(ValueError, match='stored-id order'):
        load_class_map(CLASS_MAP_DIR / MERGED, source_classes=SYNTHETIC[::-1])
    with pytest.raises(FileNotFoundError,
                       match=r"\['cityscapes19', 'cityscapes8', 'cityscapes8-labeldefs'\]"):
        load_class_map('cityscapes7', label_set='vkitti2')


# ---------------------------------------------------------------------------------- metric
def _seg_samples(preds, gts):
    out = []
    for p, g in zip(preds, gts):
        s = MultiTaskDataSample()
        s.set_pred('seg', torch.as_tensor(p))
        s.set_gt('seg', torch.as_tensor(g))
        out.append(s)
    return out


def test_metric_reports_only_the_mapped_classes():
    """GT (after mapping) holds classes 0, 2, 3 only; predictions also say 1 and 4 on
    labelled pixels. The metric's mIoU, aAcc and per-class IoU equal a confusion-matrix
    reference over {0, 2, 3} (errors into 1 and 4 still count against 0, 2, 3), with no
    entry for 1 and 4; without eval_classes their zero IoUs would drag mIoU down."""
    rng = np.random.RandomState(0)
    keep, num = [0, 2, 3], 5
    gts, preds = [], []
    for _ in range(3):
        gt = np.array(keep)[rng.randint(0, 3, (1, 16, 20))]
        gt[0, :2] = 255
        pred = np.where(rng.rand(1, 16, 20) < 0.7, gt, rng.randint(0, num, (1, 16, 20)))
        pred[pred == 255] = 1
        gts.append(gt), preds.append(pred)
    names = [f'c{i}' for i in range(num)]
    tasks = build_tasks([dict(type='SemanticTask', num_classes=num, class_names=names)])
    metric = MultiTaskMetric()
    metric.dataset_meta = dict(tasks=tasks, eval_classes={'seg': keep})
    metric.process({}, _seg_samples(preds, gts))
    ours = metric.compute_metrics(metric.results)
    g = np.concatenate([x.ravel() for x in gts])
    p = np.concatenate([x.ravel() for x in preds])
    valid = g != 255
    conf = np.bincount(g[valid] * num + p[valid], minlength=num * num).reshape(num, num)
    iou = {c: conf[c, c] / (conf[c].sum() + conf[:, c].sum() - conf[c, c]) for c in keep}
    assert sorted(k for k in ours if k.startswith('seg/IoU.')) == [f'seg/IoU.c{c}' for c in keep]
    for c in keep:
        assert ours[f'seg/IoU.c{c}'] == pytest.approx(100 * iou[c], abs=1e-4)
    assert ours['seg/mIoU'] == pytest.approx(100 * np.mean(list(iou.values())), abs=1e-4)
    assert ours['seg/aAcc'] == pytest.approx(100 * np.trace(conf) / valid.sum(), abs=1e-4)
    everything = MultiTaskMetric(tasks=[dict(type='SemanticTask', num_classes=num,
                                             class_names=names)])
    everything.process({}, _seg_samples(preds, gts))
    full = everything.compute_metrics(everything.results)
    assert full['seg/IoU.c1'] == 0 and full['seg/mIoU'] < ours['seg/mIoU'] - 10
    with pytest.raises(TypeError, match="task 'depth'.*no classes"):
        bad = MultiTaskMetric(tasks=['DepthTask'], eval_classes={'depth': [0]})
        s = MultiTaskDataSample()
        s.set_pred('depth', torch.ones(1, 4, 4)), s.set_gt('depth', torch.ones(1, 4, 4))
        bad.process({}, [s])
        bad.compute_metrics(bad.results)
    with pytest.raises(ValueError, match=r"eval_classes\['seg'\].*0\.\.4"):
        MultiTaskMetric(tasks=tasks.values(), eval_classes={'seg': [0, 5]}).compute_metrics(
            metric.results)


# -------------------------------------------------------------------------------- datasets
def test_taskonomy_format_target_through_a_class_map(tmp_path):
    truth = write_taskonomy_fixture(str(tmp_path), buildings=('bldA',), views=2,
                                    size=(16, 16), num_classes=8)
    ds = TaskonomyDataset(data_root=str(tmp_path), buildings=['bldA'], class_map=MERGED,
                          tasks=[dict(type='SemanticTask', num_classes=8), 'DepthTask'],
                          pipeline=PIPELINE)
    assert ds.metainfo['eval_classes'] == {'seg': [0, 1, 2, 5, 6, 7]}
    assert ds.tasks['seg'].class_names == list(SYNTHETIC)       # named by the class map
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        seg = ds[i]['data_samples'].get_gt('seg')[0].numpy()
        raw = truth[(info['building'], int(Path(info['img_path']).name.split('_')[1]))]['seg']
        expected = np.where(np.isin(raw, (3, 4)), 255, raw)      # table, cabinet: unlabelled
        np.testing.assert_array_equal(seg, expected)
    assert 'eval_classes' not in TaskonomyDataset(
        data_root=str(tmp_path), buildings=['bldA'], tasks=[dict(type='SemanticTask',
                                                                 num_classes=8)]).metainfo
    with pytest.raises(ValueError, match="does not fit class map 'merged-furniture'"):
        TaskonomyDataset(data_root=str(tmp_path), buildings=['bldA'], class_map=MERGED,
                         tasks=[dict(type='SemanticTask', num_classes=6)])
    from mtl_adapters.datasets.taskonomy import taskonomy_path
    write_png(taskonomy_path(tmp_path, 'segment_semantic', 'bldA', 0, 0, 'segmentsemantic'),
              np.full((16, 16), 9, np.uint8))                   # a value no class map lists
    with pytest.raises(Exception, match=r'class values \[9\].*merged-furniture'):
        ds[0]
    # data that declares its classes (meta.json, as data_prep/synthetic.py writes) in another
    # order than the class map's: refused, not silently relabelled
    (tmp_path / 'meta.json').write_text(json.dumps(dict(classes=list(SYNTHETIC)[::-1])))
    with pytest.raises(ValueError, match='stored-id order'):
        TaskonomyDataset(data_root=str(tmp_path), buildings=['bldA'], class_map=MERGED,
                         tasks=[dict(type='SemanticTask', num_classes=8)])
    (tmp_path / 'meta.json').write_text(json.dumps(dict(classes=list(SYNTHETIC))))
    TaskonomyDataset(data_root=str(tmp_path), buildings=['bldA'], class_map=MERGED,
                     tasks=[dict(type='SemanticTask', num_classes=8)])


def _by_path(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cityscapes_8_class_protocol(tmp_path):
    """Cityscapes read in the VKITTI2 -> Cityscapes protocol: the 8 shared classes by name,
    every other label unlabelled."""
    from mtl_adapters.data_generation.cityscapes import CityscapesPreparation
    from mtl_adapters.data_generation.prepare import run_preparation
    from mtl_adapters.datasets.cityscapes import CityscapesDataset
    fixture = _by_path('gen_cityscapes_fixture',
                       REPO / 'tests' / 'test_datasets' / 'cityscapes_fixture.py')
    sample = [s for s in fixture.SAMPLES if s[0] == 'val']
    truth = fixture.write_cityscapes_fixture(tmp_path, samples=sample)
    run_preparation(CityscapesPreparation(tmp_path, size=fixture.FULL_SIZE, splits=('val',)),
                    workers=1, progress=False)
    names8 = vkitti2.load_class_map('cityscapes8')[0]
    ds = CityscapesDataset(data_root=str(tmp_path), split='val', class_map='cityscapes8',
                           work_size=fixture.FULL_SIZE, pipeline=PIPELINE,
                           tasks=[dict(type='SemanticTask', num_classes=8)])
    assert list(ds.metainfo['classes']) == names8 and ds.tasks['seg'].class_names == names8
    assert ds.metainfo['eval_classes'] == {'seg': list(range(8))}
    seg = ds[0]['data_samples'].get_gt('seg')[0].numpy()
    ids = truth[sample[0][2]]['label_ids']
    for label_id, name in ((fixture.ROAD, 'road'), (fixture.BUILDING, 'building'),
                           (fixture.CAR, 'car'), (fixture.SKY, 'sky')):
        assert (seg[ids == label_id] == names8.index(name)).all(), name
    for label_id in (fixture.SIDEWALK, fixture.PARKING, fixture.BICYCLE, fixture.EGO):
        assert (seg[ids == label_id] == 255).all(), label_id
    with pytest.raises(ValueError, match="class map 'cityscapes8'"):
        CityscapesDataset(data_root=str(tmp_path), split='val', class_map='cityscapes8',
                          work_size=fixture.FULL_SIZE,
                          tasks=[dict(type='SemanticTask', num_classes=19)])


def test_cityscapes_16_class_protocol_is_synthias(tmp_path):
    """SYNTHIA -> Cityscapes: Cityscapes read in SYNTHIA's 16 classes, in the order of the
    SYNTHIA configs; terrain, truck and train unlabelled."""
    synthia = Config.fromfile(str(REPO / 'configs/_base_/datasets/synthia_sdne.py'))
    assert list(load_class_map('cityscapes16', label_set='cityscapes').class_names) == \
        list(synthia.synthia_classes)
    raw = json.loads((CLASS_MAP_DIR / 'cityscapes_to_cityscapes16.json').read_text())
    unmapped = {k for k, v in raw['cityscapes_to_class'].items() if v is None}
    assert {'terrain', 'truck', 'train', 'unlabeled'} <= unmapped
    assert all(v in (None, k) for k, v in raw['cityscapes_to_class'].items())


# --------------------------------------------------------------------------------- configs
def test_dg_configs_keep_the_target_out_of_training():
    dg, oracle = Config.fromfile(str(DG)), Config.fromfile(str(ORACLE))
    source = dg.train_dataloader.dataset
    assert source.data_root == dg.val_dataloader.dataset.data_root == 'data/synthetic'
    assert 'class_map' not in source and 'class_map' not in dg.val_dataloader.dataset
    assert dg.test_dataloader.dataset.data_root == 'data/synthetic_alt'
    assert dg.test_dataloader.dataset.class_map == MERGED
    for loader in (oracle.train_dataloader, oracle.val_dataloader, oracle.test_dataloader):
        assert loader.dataset.data_root == 'data/synthetic_alt'
        assert loader.dataset.class_map == MERGED
    assert oracle.test_dataloader.dataset == dg.test_dataloader.dataset    # same test
    # the real-data DG leaf: NYUDv2 through Taskonomy's 17 classes (eval_classes from it)
    real = Config.fromfile(str(REPO / 'configs/vtagml/'
                               'vtagml_swinv2-base_1xb8-40k_taskonomy-256x256-nyudv2-240x320_'
                               'sdne.py'))
    assert real.test_dataloader.dataset.type == 'NYUDv2Dataset'
    assert real.test_dataloader.dataset.class_map == 'taskonomy17'
    assert real.train_dataloader.dataset.type == 'TaskonomyDataset'


def test_dg_trains_on_source_and_tests_on_the_unseen_target(tmp_path):
    source, target = tmp_path / 'source', tmp_path / 'target'
    write_taskonomy_fixture(str(source), size=(32, 32), num_classes=8, seed=1)
    write_taskonomy_fixture(str(target), size=(32, 32), num_classes=8, seed=2)
    leaf = tmp_path / 'dg.py'
    leaf.write_text(tiny_leaf_config(DG, f'dg_{tmp_path.name}', source, test_root=target,
                                     lines=f"work_dir = '{tmp_path / 'work'}'\n"))
    cfg = Config.fromfile(str(leaf))
    cfg.train_dataloader.dataset.pipeline[1].geometric[0].size = (32, 32)
    runner = Runner.from_cfg(cfg)
    runner.train()
    seen = {Path(runner.train_dataloader.dataset.get_data_info(i)['img_path']).parents[2]
            for i in range(len(runner.train_dataloader.dataset))}
    assert seen == {source}                                    # the target is never trained on
    metrics = runner.test()
    per_class = sorted(k for k in metrics if k.startswith('seg/IoU.'))
    assert per_class == sorted(f'seg/IoU.{c}' for c in SYNTHETIC if c not in
                               ('table', 'cabinet'))
    for key in ('seg/mIoU', 'seg/aAcc', 'depth/rmse', 'normal/mean', 'edge/l1'):
        assert np.isfinite(metrics[key]), key
    # the validation on the source reported every class
    scalars = [json.loads(line) for line in
               next((tmp_path / 'work').rglob('vis_data/scalars.json')).read_text()
               .splitlines()]
    val = [s for s in scalars if 'seg/mIoU' in s][0]
    assert 'seg/IoU.table' in val and 'seg/IoU.cabinet' in val
