"""echossl: label-efficient learning on echocardiography and ultrasound video."""

__version__ = "0.1.0"
