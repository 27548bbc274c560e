"""Packaging for topk_sae: reads everything from settings.ini (the nbdev 2 layout)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools
from setuptools.command.build_py import build_py

cfg = ConfigParser(delimiters=["="])
cfg.read(Path(__file__).with_name("settings.ini"), encoding="utf-8")
cfg = cfg["DEFAULT"]

licenses = {"apache2": ("Apache Software License 2.0", "OSI Approved :: Apache Software License")}
statuses = ["1 - Planning", "2 - Pre-Alpha", "3 - Alpha", "4 - Beta", "5 - Production/Stable"]
py_versions = ["3.10", "3.11", "3.12", "3.13"]
lic = licenses[cfg["license"]]
min_python = cfg["min_python"]


class BuildPy(build_py):
    "Also copy data/sotu_slice.jsonl into the built package: an installed wheel runs the tiny demo with no clone."
    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):  # an editable install reads data/ in the clone itself
            target = Path(self.build_lib) / cfg["lib_path"] / "sotu_slice.jsonl"
            self.copy_file(str(Path(__file__).with_name("data") / "sotu_slice.jsonl"), str(target))


setuptools.setup(
    name=cfg["lib_name"].replace("_", "-"),
    version=cfg["version"],
    description=cfg["description"],
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    author=cfg["author"],
    author_email=cfg["author_email"],
    license=lic[0],
    url=cfg["git_url"],
    keywords=cfg["keywords"].split(),
    classifiers=[
        "Development Status :: " + statuses[int(cfg["status"]) - 1],
        "Intended Audience :: " + cfg["audience"].title(),
        "License :: " + lic[1],
        "Natural Language :: " + cfg["language"].title(),
        *["Programming Language :: Python :: " + v for v in py_versions[py_versions.index(min_python):]],
    ],
    packages=setuptools.find_packages(include=[cfg["lib_path"], cfg["lib_path"] + ".*"]),
    include_package_data=True,
    python_requires=">=" + min_python,
    install_requires=cfg.get("requirements", "").split(),
    extras_require={"dev": cfg.get("dev_requirements", "").split()},
    entry_points={
        "console_scripts": cfg.get("console_scripts", "").split(),
        "nbdev": [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"],
    },
    zip_safe=False,
    cmdclass={"build_py": BuildPy},
)
