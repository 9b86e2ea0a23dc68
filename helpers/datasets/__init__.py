"""The course's datasets, one module per kind; import the public names from here.

* :mod:`~helpers.datasets.files` -- file formats (IDX, CIFAR pickles), where files are looked for,
  torchvision downloads (checksum-verified), the parse cache, :class:`DatasetNotFoundError`;
* :mod:`~helpers.datasets.classification` -- CIFAR-10, MNIST, Fashion-MNIST (:func:`load_dataset`),
  :func:`preprocess_dataset`, :func:`describe_dataset`, :func:`random_flip_and_shift` (A1-A3, ViT);
* :mod:`~helpers.datasets.synthetic` -- generated tasks, exact and offline: arithmetic (A4 Transformer),
  captioned scenes (A4 captioning), detection scenes (A5, YOLOv1, DETR);
* :mod:`~helpers.datasets.captions` -- :func:`load_captions`: COCO 2017 or generated scenes (A4);
* :mod:`~helpers.datasets.detection` -- :func:`load_detection`: PASCAL VOC 2007 or generated scenes,
  :func:`gt_boxes_to_targets`, :class:`DetectionDataset` (A5, YOLOv1, DETR).

The modules import in that order (files <- classification <- synthetic <- captions, detection):
no module imports one after it, so there is no import circle.
"""

from helpers.datasets import synthetic
from helpers.datasets.captions import (
    CAPTION_DATASETS,
    CAPTION_MAX_LENGTH,
    CAPTION_SPLITS,
    COCO_IMAGE_SIZE,
    COCO_MIN_COUNT,
    coco_folder,
    load_captions,
    load_coco_captions,
    read_coco_captions,
)
from helpers.datasets.classification import (
    describe_dataset,
    load_cifar10,
    load_dataset,
    load_fashion_mnist,
    load_mnist,
    preprocess_dataset,
    random_flip_and_shift,
)
from helpers.datasets.detection import (
    DETECTION_DATASETS,
    SCENE_DETECTION_SPLITS,
    VOC_CLASSES,
    VOC_IMAGE_SIZE,
    VOC_SPLITS,
    DetectionDataset,
    gt_boxes_to_targets,
    load_detection,
    load_voc_detection,
    read_voc_annotation,
    read_voc_split,
    voc_folder,
    voc_splits_found,
    voc_splits_used,
    write_voc_devkit,
)
from helpers.datasets.files import (
    CLASS_NAMES,
    DATASETS,
    SYSTEM_FASHION_MNIST_DIR,
    DatasetNotFoundError,
    candidate_folders,
    clear_cache,
    download_dataset,
    find_dataset_folder,
    read_cifar_batch,
    read_idx,
)

__all__ = [
    "CAPTION_DATASETS",
    "CAPTION_MAX_LENGTH",
    "CAPTION_SPLITS",
    "CLASS_NAMES",
    "COCO_IMAGE_SIZE",
    "COCO_MIN_COUNT",
    "DATASETS",
    "DETECTION_DATASETS",
    "DatasetNotFoundError",
    "DetectionDataset",
    "SCENE_DETECTION_SPLITS",
    "SYSTEM_FASHION_MNIST_DIR",
    "VOC_CLASSES",
    "VOC_IMAGE_SIZE",
    "VOC_SPLITS",
    "candidate_folders",
    "clear_cache",
    "coco_folder",
    "describe_dataset",
    "download_dataset",
    "find_dataset_folder",
    "gt_boxes_to_targets",
    "load_captions",
    "load_cifar10",
    "load_coco_captions",
    "load_dataset",
    "load_detection",
    "load_fashion_mnist",
    "load_mnist",
    "load_voc_detection",
    "preprocess_dataset",
    "random_flip_and_shift",
    "read_cifar_batch",
    "read_coco_captions",
    "read_idx",
    "read_voc_annotation",
    "read_voc_split",
    "synthetic",
    "voc_folder",
    "voc_splits_found",
    "voc_splits_used",
    "write_voc_devkit",
]
