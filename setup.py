from setuptools import find_packages, setup

INSTALL_REQUIRES = [
    "alembic>=1.13",
    "argon2-cffi>=23.1",
    "celery[redis,sqlalchemy]>=5.4",
    "click>=8.1",
    "cryptography>=42",
    "Jinja2>=3.1.6",
    "kombu>=5.4",
    "lark>=1.2",
    "lxml>=5.2",
    "nhsuk-frontend-jinja==0.10.2",
    # pyreadstat writes SAS transport, Stata and SPSS files from pandas data frames.
    "pandas>=2.2",
    "psycopg[binary]>=3.2",
    "pyotp>=2.9",
    "PyYAML>=6.0",
    "pyramid>=2.0.2",
    "pyramid_jinja2>=2.10",
    "pyramid_retry>=2.1",
    "pyramid_tm>=2.5",
    "pyreadstat>=1.2.8",
    "redis>=5",
    "reportlab>=4.2",
    "segno>=1.6",
    "SQLAlchemy>=2.0.30",
    "transaction>=4",
    "waitress>=3",
    "WTForms>=3.1",
    "zope.interface>=6",
    "zope.sqlalchemy>=3.1",
    "zxcvbn>=4.4",
]

TESTS_REQUIRE = [
    "factory_boy>=3.3",
    "hypothesis>=6.100",
    "jsonschema>=4.22",
    "playwright>=1.45",
    "pytest>=8",
    "pytest-xdist>=3.5",
    # The independent implementation of minimisation the tests compare ours with.
    "smallerize==0.5.0",
    "time-machine>=2.14",
    "WebTest>=3",
]

# Pinned so that a new release cannot change what lint accepts under our feet.
DEV_REQUIRE = ["mypy==2.4.1", "pre-commit>=3.7", "ruff==0.17.6"]

setup(
    name="bhp_ctms",
    version="0.1.0",
    description="BHP CTMS: clinical trial management and electronic case report forms",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["bhp_ctms", "bhp_ctms.*"]),
    include_package_data=True,
    package_data={
        "bhp_ctms": [
            "templates/**/*",
            "static/**/*",
            "data/*",
            "crf/expressions/*.lark",
            # The CDISC ODM 1.3.2 schema, read locally: validation never fetches it.
            "odm/schema-1.3.2/*",
        ]
    },
    install_requires=INSTALL_REQUIRES,
    extras_require={"tests": TESTS_REQUIRE, "dev": TESTS_REQUIRE + DEV_REQUIRE},
    entry_points={
        "paste.app_factory": ["main = bhp_ctms.config:main"],
        "console_scripts": ["ctms = bhp_ctms.cli:ctms"],
    },
)
