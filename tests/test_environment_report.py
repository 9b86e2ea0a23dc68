"""helpers.environment_report: the report students paste into bug reports (`make check`)."""

from helpers import environment_report as report_module
from helpers.config import Config
from helpers.datasets import DATASETS


def test_check_reports_every_required_package_ok():
    statuses = report_module.check_packages()
    assert [s.distribution for s in statuses] == [d for _, d in report_module.REQUIRED_PACKAGES]
    assert {"torch", "scikit-learn", "pytest-xdist", "nbclient"} <= {s.distribution for s in statuses}
    for status in statuses:
        assert status.ok, status.line()
        assert status.version and status.version[0].isdigit(), status
        assert status.line() == f"OK   {status.distribution} {status.version}"


def test_check_package_missing():
    status = report_module.check_package("dl4cv_no_such_module", "dl4cv-no-such-dist")
    assert not status.ok
    assert status.line() == "FAIL dl4cv-no-such-dist (not installed: pip install -r requirements.txt)"


def test_check_datasets_present_downloadable_missing(tmp_path):
    spec = DATASETS["cifar10"]
    folder = tmp_path / spec.subdir
    folder.mkdir(parents=True)
    for name in spec.files:
        (folder / name).write_bytes(b"")
    offline = {s.name: s for s in report_module.check_datasets(Config(offline=True, data_dir=tmp_path))}
    online = {s.name: s for s in report_module.check_datasets(Config(offline=False, data_dir=tmp_path))}
    assert set(offline) == set(DATASETS)
    assert offline["cifar10"].state == "present" and offline["cifar10"].folder == folder
    assert offline["mnist"].state == "missing"
    assert str(tmp_path / "MNIST" / "raw") in offline["mnist"].remedy
    assert "DL4CV_OFFLINE=0" in offline["mnist"].line()
    assert online["mnist"].state == "downloadable"
    assert online["cifar10"].state == "present"


def test_check_environment_and_cli(monkeypatch, capsys):
    monkeypatch.setenv("DL4CV_DEVICE", "cpu")
    report = report_module.check_environment()
    assert report.ok and report.device == "cpu"
    assert report.config.startswith("dl4cv config: ")
    assert report_module.main([]) == 0
    out = capsys.readouterr().out
    assert "OK   torch " in out and "python " in out and "device: cpu" in out
    assert "fashion_mnist" in out and out.rstrip().endswith("environment OK")


def test_check_fails_on_bad_config(monkeypatch, capsys):
    monkeypatch.setenv("DL4CV_FAST", "maybe")
    report = report_module.check_environment()
    assert not report.ok and "DL4CV_FAST" in report.config
    report_module.print_environment_report(report)
    assert "environment has problems" in capsys.readouterr().out


def test_real_data_lists_voc_archives_coco_and_weights(tmp_path):
    import torch

    from helpers.backbone import REGNET_X_400MF

    offline = Config(offline=True, data_dir=tmp_path)
    hub = torch.hub.get_dir()
    try:
        torch.hub.set_dir(str(tmp_path / "hub"))
        lines = {s.name: s for s in report_module.check_real_data(offline)}
        assert lines["voc2007"].state == "missing" and "VOCtrainval_06-Nov-2007.tar" in lines["voc2007"].line()
        assert lines["coco captions"].state == "missing" and "captioned_scenes" in lines["coco captions"].line()
        weights = lines["weights regnet_x_400mf"]
        assert weights.state == "missing" and REGNET_X_400MF.file_name in weights.line() and "scratch" in weights.line()
        online = {s.name: s for s in report_module.check_real_data(Config(offline=False, data_dir=tmp_path))}
        assert online["weights regnet_x_400mf"].state == "downloadable"
        voc = tmp_path / "VOCdevkit" / "VOC2007"
        for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
            (voc / sub).mkdir(parents=True)
        (voc / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n")
        (tmp_path / "weights").mkdir()
        (tmp_path / "weights" / REGNET_X_400MF.file_name).write_bytes(b"x")
        lines = {s.name: s for s in report_module.check_real_data(offline)}
        assert lines["voc2007"].line() == (f"present      voc2007: {voc} (trainval: yes, test: no; the detection "
                                           "notebooks use train / val (no test archive))")
        assert lines["weights regnet_x_400mf"].state == "cached"
    finally:
        torch.hub.set_dir(hub)
