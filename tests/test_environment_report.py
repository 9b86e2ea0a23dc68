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
