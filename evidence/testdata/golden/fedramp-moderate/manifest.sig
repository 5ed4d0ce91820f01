aigw-assessor-package/1
8c7738bf-4e12-50ac-815d-d6a1dcd0c598
S9IsvOdjZU/ua71U9eGYh38cESzILl+GpszOW3XEgzw=

— aigw-test wbeI6jx/HVUbl+oW5ucg84m6GDD3X2QVj+2CRnEnHhV7aq49TpX/XZ7lrpwJNbJb0nNDFbzx/xyuTqDdKod3Z8TCpgk=
