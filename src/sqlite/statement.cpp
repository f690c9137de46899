#include "sqlite/statement.h"
