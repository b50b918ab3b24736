from .metrics import classification_metrics, lm_metrics, multilabel_metrics, regression_metrics
from .predict import accuracy, evaluate_dataset, lm_eval, predict_logits

__all__ = ["accuracy", "evaluate_dataset", "predict_logits", "lm_eval", "classification_metrics",
           "multilabel_metrics", "regression_metrics", "lm_metrics"]
