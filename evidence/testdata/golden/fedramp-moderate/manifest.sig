aigw-assessor-package/1
3688c60d-d4b1-5c6e-8a53-efa2a901e764
MeNyi4lNCtOKtQDgQcoWZJH2zG6sdN7w7lOHpXjlyBM=

— aigw-test wbeI6gppWa7POomFrM71O0EBDctTUU2gW1dRitfXyF4h/+1G3m4olSHN4rAXc1Wge+I0mBj/8C7YEXCYaC805WzhHQ4=
