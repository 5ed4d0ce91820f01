aigw-assessor-package/1
5c33375c-d7e7-5c4d-aef1-4570814be468
kxuN2BGhwaRseLSKk2GMb+1W6Qoeu2StY0e164j5MvI=

— aigw-test wbeI6hF+cxkqmuAdEmFdr62X+lMLbVVFgTNXTaAzV7Z0UX0oHlsOOhGaBfvCY01F0Ug/RTmDiCG3irpK1uaPwHp+2QU=
